import { describeFamily } from './suite.ts';

describeFamily('usage');
