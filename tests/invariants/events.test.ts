import { describeFamily } from './suite.ts';

describeFamily('events');
