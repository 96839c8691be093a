import { describeFamily } from './suite.ts';

describeFamily('payments');
