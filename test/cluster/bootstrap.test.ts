/**
 * Joining and bootstrapping mistakes, with real processes: a member started with --initial-cluster-state
 * existing that was never added, or whose cluster cannot be reached, refuses to start with etcd's words; a
 * member of another cluster (another --initial-cluster-token) is refused by the cluster's members; and a
 * restart on an existing data dir ignores the initial-* flags.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ServerHandle, startNestcd, stopAllServers } from '../support';
import { ctl, eventually, tableRows } from './cluster-support';

jest.setTimeout(120000);

describe('joining and bootstrapping checks', () => {
  let root: string;
  let n1: ServerHandle;
  const n1Ports = { client: 0, peer: 0 };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'nestcd-bootstrap-'));
    n1Ports.client = await freePort();
    n1Ports.peer = await freePort();
    n1 = await startNestcd({ name: 'n1', dataDir: join(root, 'n1'), clientPort: n1Ports.client, peerPort: n1Ports.peer, extraArgs: ['--initial-cluster-token', 'tok-a'] });
    await ctl(n1.endpoint, ['put', 'k', 'v']);
  });

  afterAll(async () => {
    await stopAllServers();
    rmSync(root, { recursive: true, force: true });
  });

  const startFailure = async (name: string, args: string[]): Promise<string> => {
    try {
      await startNestcd({ name, dataDir: join(root, name), extraArgs: args, readyTimeoutMs: 20000 });
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error(`${name} started`);
  };

  it('a member that was never added cannot join with --initial-cluster-state existing', async () => {
    const peer = await freePort();
    const msg = await startFailure('n2', [
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`, '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `n1=${n1.peerUrl},n2=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'existing', '--initial-cluster-token', 'tok-a',
    ]);
    expect(msg).toMatch(/exited before becoming ready \(code=1/);
    expect(msg).toMatch(/nestcd: error validating peerURLs n1=http:\/\/127\.0\.0\.1:\d+: member count is unequal/);
  });

  it('a joining member whose cluster cannot be reached says so', async () => {
    const [peer, dead] = [await freePort(), await freePort()];
    const msg = await startFailure('n3', [
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`, '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `x=http://127.0.0.1:${dead},n3=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'existing',
    ]);
    expect(msg).toMatch(/nestcd: cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs/);
  });

  it('a member bootstrapped with another cluster token is refused by the cluster', async () => {
    const peer = await freePort();
    await ctl(n1.endpoint, ['member', 'add', 'n4', `--peer-urls=http://127.0.0.1:${peer}`, '--learner']);
    const n4 = await startNestcd({
      name: 'n4', dataDir: join(root, 'n4'), peerPort: peer,
      extraArgs: ['--initial-cluster', `n1=${n1.peerUrl},n4=http://127.0.0.1:${peer}`, '--initial-cluster-token', 'tok-b'],
      readyTimeoutMs: 6000,
    }).catch((err: Error) => err);
    // It can never become healthy (no quorum of its own cluster); both sides log why.
    expect(n4).toBeInstanceOf(Error);
    await eventually(async () => {
      if (!/refused (connection from member [0-9a-f]+ \(127\.0\.0\.1:\d+\)|the connection): cluster ID mismatch/.test(n1.logs())) throw new Error('no refusal logged on n1');
    }, 10000);
    expect((n4 as Error).message).toMatch(/refused (connection from member [0-9a-f]+ \(127\.0\.0\.1:\d+\)|the connection): cluster ID mismatch/);
    const rows = tableRows(await ctl(n1.endpoint, ['member', 'list', '-w', 'table']));
    expect(rows.find((r) => r[3] === `http://127.0.0.1:${peer}`)?.[1]).toBe('unstarted');
  });

  it('a restart on an existing data dir ignores the initial-* flags', async () => {
    const before = tableRows(await ctl(n1.endpoint, ['member', 'list', '-w', 'table']));
    await n1.stop();
    const other = await freePort();
    n1 = await startNestcd({
      name: 'n1', dataDir: join(root, 'n1'), clientPort: n1Ports.client, peerPort: n1Ports.peer,
      extraArgs: ['--initial-cluster', `n1=${n1.peerUrl},zz=http://127.0.0.1:${other}`, '--initial-cluster-token', 'something-else', '--initial-cluster-state', 'existing'],
    });
    expect(await ctl(n1.endpoint, ['get', 'k', '--print-value-only'])).toBe('v\n');
    expect(tableRows(await ctl(n1.endpoint, ['member', 'list', '-w', 'table']))).toEqual(before);
  });
});
