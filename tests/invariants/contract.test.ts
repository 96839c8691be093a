import { describeFamily } from './suite.ts';

describeFamily('contract');
