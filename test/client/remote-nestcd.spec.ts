import { kvClientContract } from './contract';
import { remoteHarness } from './remote-harness';

kvClientContract('remote (nestcd process)', () => remoteHarness('nestcd'), { cuttable: true });
