import { describeFamily } from './suite.ts';

describeFamily('app_runtime');
