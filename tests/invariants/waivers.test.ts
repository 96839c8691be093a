import { describeFamily } from './suite.ts';

describeFamily('waivers');
