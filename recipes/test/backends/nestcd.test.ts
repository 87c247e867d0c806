import { describeConformance } from '../conformance';

describeConformance('nestcd');
