import { describeConformance } from '../conformance';

describeConformance('etcd');
