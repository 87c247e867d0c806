import { describeConformance } from '../conformance';

describeConformance('redis');
