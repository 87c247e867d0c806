import { describeConformance } from '../conformance';

describeConformance('embedded');
