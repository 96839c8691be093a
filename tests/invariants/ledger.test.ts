import { describeFamily } from './suite.ts';

describeFamily('ledger');
