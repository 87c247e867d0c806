/**
 * Runtime membership of real nestcd processes under write load, driven by the real etcdctl 3.4: a one-member
 * cluster grows to 3 and then 5 (one of them added as a learner and promoted), shrinks to 3 (removing the
 * leader among others; each removed member stops by itself), and a member whose data dir was wiped is replaced.
 * Writers keep writing throughout; at the end every acknowledged write is on every member and HashKV agrees.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdctl, freePort, ServerHandle, startNestcd, stopAllServers } from '../support';
import { ctl, endpointStatus, eventually, tableRows } from './cluster-support';

jest.setTimeout(240000);

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  endpoint: string;
  peerUrl: string;
  handle?: ServerHandle;
}

const TOKEN = 'nestcd-membership-test';

describe('membership changes under write load', () => {
  let root: string;
  const all: Member[] = [];
  /** Members currently in the cluster, in the order they joined. */
  let inCluster: Member[] = [];
  /** Learners serve no client requests but Status and serializable reads (etcd 3.4): clients leave them out. */
  const learners = new Set<Member>();
  const voters = () => inCluster.filter((x) => !learners.has(x));

  const newMember = async (name: string): Promise<Member> => {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const m: Member = {
      name, clientPort, peerPort, dataDir: join(root, name),
      endpoint: `http://127.0.0.1:${clientPort}`, peerUrl: `http://127.0.0.1:${peerPort}`,
    };
    all.push(m);
    return m;
  };

  const initialClusterOf = (ms: Member[]) => ms.map((m) => `${m.name}=${m.peerUrl}`).join(',');

  const start = async (m: Member, members: Member[], state: 'new' | 'existing', learner = false) => {
    m.handle = await startNestcd({
      name: m.name, dataDir: m.dataDir, clientPort: m.clientPort, peerPort: m.peerPort, readyTimeoutMs: 60000,
      readyCommand: learner ? ['endpoint', 'status'] : undefined,
      extraArgs: ['--initial-cluster', initialClusterOf(members), '--initial-cluster-state', state, '--initial-cluster-token', TOKEN],
    });
  };

  const memberRows = async (at: Member[] = voters()) => tableRows(await ctl(at.map((x) => x.endpoint), ['member', 'list', '-w', 'table']));
  const idOf = async (m: Member) => {
    const row = (await memberRows()).find((r) => r[3] === m.peerUrl);
    if (!row) throw new Error(`${m.name} is not a member`);
    return row[0];
  };

  /** etcdctl member add/remove/promote, retried while the cluster refuses for now (not connected long enough...). */
  const reconfigure = async (args: string[], done: () => Promise<boolean>) => {
    await eventually(async () => {
      if (await done()) return;
      const r = await etcdctl(voters().map((x) => x.endpoint), [...args, '--command-timeout=10s'], { timeoutMs: 15000 });
      if (r.code === 0) return;
      if (await done()) return; // applied although the answer was lost
      throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
    }, 60000, 500);
  };

  const add = async (m: Member, learner = false) => {
    await reconfigure(['member', 'add', m.name, `--peer-urls=${m.peerUrl}`, ...(learner ? ['--learner'] : [])],
      async () => (await memberRows()).some((r) => r[3] === m.peerUrl));
    const members = [...inCluster, m];
    if (learner) learners.add(m);
    await start(m, members, 'existing', learner);
    inCluster = members;
    await eventually(async () => {
      const row = (await memberRows()).find((r) => r[3] === m.peerUrl);
      if (row?.[1] !== 'started' || row[2] !== m.name || row[4] !== m.endpoint) throw new Error(`${m.name} not published: ${JSON.stringify(row)}`);
    }, 30000);
  };

  /** Removes `m`; its process stops by itself (etcd: "the member has been permanently removed from the cluster"). */
  const remove = async (m: Member) => {
    const id = await idOf(m);
    const others = inCluster.filter((x) => x !== m);
    const rest = others.filter((x) => !learners.has(x));
    await reconfigure(['member', 'remove', id], async () => !(await memberRows(rest)).some((r) => r[0] === id));
    inCluster = others;
    await eventually(async () => {
      if (m.handle?.isRunning()) throw new Error(`${m.name} still running after its removal`);
    }, 20000);
    expect(m.handle!.logs()).toContain('the member has been permanently removed from the cluster');
    await m.handle!.stop();
    m.handle = undefined;
  };

  const leaderOf = async () =>
    eventually(async () => {
      const rows = await endpointStatus(inCluster.map((x) => x.endpoint));
      const leaders = rows.filter((r) => r.isLeader);
      if (rows.length !== inCluster.length || leaders.length !== 1) throw new Error(`no single leader: ${JSON.stringify(rows)}`);
      return inCluster.find((x) => x.endpoint === leaders[0].endpoint)!;
    }, 20000);

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'nestcd-membership-'));
  });

  afterAll(async () => {
    await Promise.all(all.map((m) => m.handle?.stop(5000)));
    await stopAllServers();
    if (!process.env.COMPAT_KEEP_DATA) rmSync(root, { recursive: true, force: true });
  });

  it('grows 1 -> 3 -> 5, shrinks to 3 (removing the leader), replaces a wiped member: no acknowledged write lost, hashes equal', async () => {
    const n1 = await newMember('n1');
    await start(n1, [n1], 'new');
    inCluster = [n1];

    // Two writers, each putting its own keys through the members currently in the cluster (retrying elsewhere).
    const acked = new Map<string, string>();
    let writing = true;
    let retries = 0;
    const writer = async (w: number) => {
      for (let i = 0; writing && i < 2000; i++) {
        const key = `load/w${w}/${String(i).padStart(4, '0')}`;
        for (let attempt = 0; ; attempt++) {
          if (attempt > 100) throw new Error(`writer ${w} gave up on ${key}`);
          const targets = voters().filter((x) => x.handle?.isRunning());
          const target = targets[(i + attempt + w) % targets.length];
          const r = await etcdctl(target.endpoint, ['put', key, `v${i}`, '--command-timeout=5s', '--dial-timeout=1s'], { timeoutMs: 10000 });
          if (r.code === 0) {
            acked.set(key, `v${i}`);
            break;
          }
          retries++;
          await new Promise((res) => setTimeout(res, 100));
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    };
    const writers = [writer(0), writer(1)];
    const progress = async (more: number) => {
      const target = acked.size + more;
      await eventually(async () => {
        if (acked.size < target) throw new Error(`only ${acked.size} writes acknowledged`);
      }, 30000, 50);
    };

    try {
      await progress(5);
      // 1 -> 3
      const n2 = await newMember('n2');
      await add(n2);
      await progress(5);
      const n3 = await newMember('n3');
      await add(n3);
      await progress(5);
      // 3 -> 5: n4 joins as a learner and is promoted once in sync; n5 joins as a voter.
      const n4 = await newMember('n4');
      await add(n4, true);
      expect((await memberRows()).find((r) => r[3] === n4.peerUrl)![5]).toBe('true');
      // As etcd 3.4, a learner serves Status and serializable reads only.
      const status = tableRows(await ctl(n4.endpoint, ['endpoint', 'status', '-w', 'table']))[0];
      expect(status[5]).toBe('true');
      await eventually(async () => {
        if ((await ctl(n4.endpoint, ['get', 'load/w0/0000', '--print-value-only', '--consistency=s'])) !== 'v0\n') throw new Error('learner not caught up');
      });
      const refused = await etcdctl(n4.endpoint, ['put', 'x', 'y', '--command-timeout=3s']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('etcdserver: rpc not supported for learner');
      // The JSON gateway refuses the same calls the same way (etcd's gateway goes through gRPC): 503, code 14.
      const gateway = (path: string, body: object) => fetch(`${n4.endpoint}/v3/${path}`, { method: 'POST', body: JSON.stringify(body) });
      const httpPut = await gateway('kv/put', { key: Buffer.from('x').toString('base64'), value: Buffer.from('y').toString('base64') });
      expect(httpPut.status).toBe(503);
      expect(await httpPut.json()).toEqual({ error: 'etcdserver: rpc not supported for learner', message: 'etcdserver: rpc not supported for learner', code: 14 });
      const httpRead = await gateway('kv/range', { key: Buffer.from('load/w0/0000').toString('base64'), serializable: true });
      expect(httpRead.status).toBe(200);
      expect(Buffer.from(((await httpRead.json()) as { kvs: { value: string }[] }).kvs[0].value, 'base64').toString()).toBe('v0');
      expect((await gateway('kv/range', { key: Buffer.from('load/w0/0000').toString('base64') })).status).toBe(503);
      expect((await gateway('maintenance/status', {})).status).toBe(200);
      const n4Id = await idOf(n4);
      await reconfigure(['member', 'promote', n4Id], async () => (await memberRows()).find((r) => r[0] === n4Id)?.[5] === 'false');
      learners.delete(n4);
      const n5 = await newMember('n5');
      await add(n5);
      await progress(5);
      expect((await memberRows()).map((r) => r[2]).sort()).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);

      // 5 -> 3: the leader first, then another member.
      const leader = await leaderOf();
      await remove(leader);
      await leaderOf();
      await progress(5);
      await remove(inCluster.find((x) => x !== inCluster[0])!);
      await progress(5);
      expect(inCluster).toHaveLength(3);

      // Replace a member whose data dir was wiped: remove it, wipe, add it back (a new ID), start it empty.
      const victim = inCluster.find((x) => x !== leader)!;
      const oldId = await idOf(victim);
      await remove(victim);
      rmSync(victim.dataDir, { recursive: true, force: true });
      await add(victim);
      expect(await idOf(victim)).not.toBe(oldId);
      await progress(5);
    } finally {
      writing = false;
      await Promise.all(writers);
    }

    // Every acknowledged write is on every member, and the keyspaces hash the same.
    expect(inCluster).toHaveLength(3);
    for (const x of inCluster) {
      const got = new Map<string, string>();
      await eventually(async () => {
        const lines = (await ctl(x.endpoint, ['get', '--prefix', 'load/'])).split('\n').filter(Boolean);
        got.clear();
        for (let i = 0; i + 1 < lines.length; i += 2) got.set(lines[i], lines[i + 1]);
        if (got.size < acked.size) throw new Error(`${x.name} has ${got.size} of ${acked.size} keys`);
      }, 15000);
      for (const [k, v] of acked) expect([x.name, k, got.get(k)]).toEqual([x.name, k, v]);
    }
    const hashes = await eventually(async () => {
      const out = await ctl(inCluster[0].endpoint, ['endpoint', 'hashkv', '--cluster']);
      const hs = out.split('\n').filter(Boolean).map((l) => l.split(', ')[1]);
      if (hs.length !== 3 || new Set(hs).size !== 1) throw new Error(`hashes differ:\n${out}`);
      return hs;
    }, 15000);
    expect(hashes).toHaveLength(3);
    // eslint-disable-next-line no-console
    console.log(`membership under load: ${acked.size} acknowledged writes, ${retries} client retries`);
  });
});
