import { kvClientContract } from './contract';
import { remoteHarness } from './remote-harness';

kvClientContract('remote (real etcd 3.4)', () => remoteHarness('etcd'), { cuttable: true });
