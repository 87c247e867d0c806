/**
 * A static 3-member nestcd cluster of real processes on loopback, driven by the real etcdctl 3.4
 * (bin/nestcd runs the build: `npm run build` first, as for every process test).
 */
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '@nestcd/api';
import { etcdctl, spawnEtcdctl, stopAllServers } from '../support';
import { assertLinearizable, History, kv, KvDriver, KvInput, KvOutput, kvModel, recordKvOp } from '../support/linearizability';
import { Cluster, ClusterMember, ctl, endpointStatus, eventually, startCluster, tableRows } from './cluster-support';

jest.setTimeout(60000);

type Unary = (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: never) => void) => void;
type KvStub = grpc.Client & Record<string, Unary>;

/** A history client's view of one member over gRPC (each call with a 2 s deadline). */
function grpcDriver(stub: KvStub): KvDriver {
  const call = <T>(method: string, req: object) =>
    new Promise<T>((resolve, reject) => stub[method](req, { deadline: Date.now() + 2000 }, (err, res) => (err ? reject(err) : resolve(res as T))));
  const b = (x: string) => Buffer.from(x);
  return {
    get: async (key) => {
      const r = await call<{ kvs: { value: Buffer }[] }>('Range', { key: b(key) });
      return r.kvs[0] ? r.kvs[0].value.toString() : null;
    },
    put: async (key, value) => {
      await call('Put', { key: b(key), value: b(value) });
    },
    cas: async (key, expected, value) => {
      // etcd's CompareResult EQUAL = 0; CompareTarget VERSION = 0, VALUE = 3
      const compare = expected === null ? { result: 0, target: 0, key: b(key), version: '0' } : { result: 0, target: 3, key: b(key), value: b(expected) };
      return (await call<{ succeeded: boolean }>('Txn', { compare: [compare], success: [{ requestPut: { key: b(key), value: b(value) } }], failure: [] })).succeeded;
    },
  };
}

describe('a static 3-member cluster', () => {
  let c: Cluster;
  let m: ClusterMember[];

  beforeAll(async () => {
    c = await startCluster(3);
    m = c.members;
  }, 60000);

  afterAll(async () => {
    await c?.stop();
    await stopAllServers();
  });

  /** The single leader the members agree on, with every member in the same term. */
  const agreedLeader = (members: ClusterMember[]) =>
    eventually(async () => {
      const rows = await endpointStatus(members.map((x) => x.endpoint));
      const leaders = rows.filter((r) => r.isLeader);
      if (rows.length !== members.length || leaders.length !== 1) throw new Error(`no single leader:\n${JSON.stringify(rows)}`);
      if (new Set(rows.map((r) => r.raftTerm)).size !== 1) throw new Error(`terms differ:\n${JSON.stringify(rows)}`);
      return { leader: members.find((x) => x.endpoint === leaders[0].endpoint)!, rows };
    }, 15000);

  it('member list shows 3 started members with their peer and client URLs, on every member', async () => {
    for (const at of m) {
      const rows = await eventually(async () => {
        const r = tableRows(await ctl(at.endpoint, ['member', 'list', '-w', 'table']));
        // Every member publishes its client URLs through the log on start; wait until all three are applied.
        if (r.some((row) => row[4] === '')) throw new Error(`not published yet: ${JSON.stringify(r)}`);
        return r;
      });
      expect(rows).toHaveLength(3);
      const byName = new Map(rows.map((r) => [r[2], r]));
      for (const x of m) {
        const row = byName.get(x.name)!;
        expect(row).toBeDefined();
        expect(row[0]).toMatch(/^[0-9a-f]+$/);
        expect(row[1]).toBe('started');
        expect(row[3]).toBe(x.peerUrl);
        expect(row[4]).toBe(x.endpoint);
        expect(row[5]).toBe('false');
      }
    }
  });

  it('endpoint status --cluster shows exactly one leader and one raft term', async () => {
    const rows = await eventually(async () => {
      const r = await endpointStatus(m[0].endpoint, true);
      if (r.filter((x) => x.isLeader).length !== 1 || new Set(r.map((x) => x.raftTerm)).size !== 1) throw new Error(JSON.stringify(r));
      return r;
    });
    expect(rows.map((r) => r.endpoint).sort()).toEqual([...c.endpoints].sort());
    expect(rows.filter((r) => r.isLeader)).toHaveLength(1);
    expect(new Set(rows.map((r) => r.id)).size).toBe(3);
    // etcdctl reports health on stderr.
    const health = await etcdctl(m[1].endpoint, ['endpoint', 'health', '--cluster']);
    expect(health.code).toBe(0);
    expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);
  });

  it('a key written through member 1 is read on members 2 and 3, linearizable and serializable', async () => {
    await ctl(m[0].endpoint, ['put', 'cluster/k', 'v1']);
    for (const at of [m[1], m[2]]) {
      expect(await ctl(at.endpoint, ['get', 'cluster/k', '--print-value-only'])).toBe('v1\n');
      // After a linearizable read this member has applied the write, so a local read sees it too.
      expect(await ctl(at.endpoint, ['get', 'cluster/k', '--print-value-only', '--consistency=s'])).toBe('v1\n');
    }
  });

  it('a watch on member 3 sees writes made through member 1', async () => {
    const rev = JSON.parse(await ctl(m[2].endpoint, ['get', 'cluster/none', '-w', 'json'])).header.revision as number;
    // Watching from the next revision on: no race with the watch being set up.
    const w = spawnEtcdctl(m[2].endpoint, ['watch', '--prefix', 'cluster/w/', `--rev=${rev + 1}`]);
    try {
      await ctl(m[0].endpoint, ['put', 'cluster/w/a', '1']);
      await ctl(m[0].endpoint, ['put', 'cluster/w/b', '2']);
      await ctl(m[0].endpoint, ['del', 'cluster/w/a']);
      const out = await w.waitFor(/DELETE\ncluster\/w\/a\n/, 10000);
      expect(out.trimEnd()).toBe('PUT\ncluster/w/a\n1\nPUT\ncluster/w/b\n2\nDELETE\ncluster/w/a');
    } finally {
      await w.stop();
    }
  });

  it("a lease kept alive through a follower stays alive on the leader's lessor, and expires once the keep-alive stops", async () => {
    const { leader } = await agreedLeader(m);
    const follower = m.find((x) => x !== leader)!;
    const lease = /lease ([0-9a-f]+) granted/.exec(await ctl(follower.endpoint, ['lease', 'grant', '3']))![1];
    await ctl(follower.endpoint, ['put', 'cluster/leased', 'x', `--lease=${lease}`]);
    const ka = spawnEtcdctl(follower.endpoint, ['lease', 'keep-alive', lease]);
    try {
      await new Promise((r) => setTimeout(r, 4500)); // past the 3 s TTL
      expect(ka.stdout()).toMatch(new RegExp(`lease ${lease} keepalived with TTL\\(3\\)`));
      expect(ka.stdout()).not.toMatch(/expired or revoked/);
      expect(await ctl(leader.endpoint, ['get', 'cluster/leased', '--print-value-only'])).toBe('x\n');
    } finally {
      await ka.stop();
    }
    // Expiry is the leader's decision, replicated as a revoke: the key goes on every member.
    await eventually(async () => {
      for (const x of m) {
        const v = await ctl(x.endpoint, ['get', 'cluster/leased', '--print-value-only', '--consistency=s']);
        if (v !== '') throw new Error(`still there on ${x.name}`);
      }
    }, 10000);
  });

  it("a follower answers LeaseTimeToLive with the leader's remaining TTL", async () => {
    const { leader } = await agreedLeader(m);
    const follower = m.find((x) => x !== leader)!;
    const lease = /lease ([0-9a-f]+) granted/.exec(await ctl(leader.endpoint, ['lease', 'grant', '12']))![1];
    await new Promise((r) => setTimeout(r, 4000));
    // Renewed on the leader only: a follower answering from its own lessor would report about 8 s left.
    await ctl(leader.endpoint, ['lease', 'keep-alive', '--once', lease]);
    const out = await ctl(follower.endpoint, ['lease', 'timetolive', lease]);
    const remaining = Number(/remaining\((\d+)s\)/.exec(out)![1]);
    expect(out).toMatch(new RegExp(`lease ${lease} granted with TTL\\(12s\\)`));
    expect(remaining).toBeGreaterThanOrEqual(10);
    await ctl(leader.endpoint, ['lease', 'revoke', lease]);
  });

  it('survives kill -9 of the leader under writes: new leader, no acknowledged write lost, the old leader catches up', async () => {
    const { leader, rows } = await agreedLeader(m);
    const oldTerm = rows[0].raftTerm;
    const survivors = m.filter((x) => x !== leader);
    const acked = new Map<string, string>();
    let killed = false;
    let failedAttempts = 0;

    // Three clients, one per member, each writing its own keys; a client whose member fails retries elsewhere.
    const writer = async (w: number, first: ClusterMember) => {
      let target = first;
      for (let i = 0; i < 12; i++) {
        const key = `fo/w${w}/${String(i).padStart(3, '0')}`;
        for (let attempt = 0; ; attempt++) {
          if (attempt > 30) throw new Error(`writer ${w} gave up on ${key}`);
          const r = await etcdctl(target.endpoint, ['put', key, `v${i}`, '--command-timeout=3s', '--dial-timeout=1s'], { timeoutMs: 8000 });
          if (r.code === 0) {
            acked.set(key, `v${i}`);
            break;
          }
          failedAttempts++;
          if (killed && target === leader) target = survivors[w % survivors.length];
          await new Promise((res) => setTimeout(res, 100));
        }
      }
    };
    const writers = [writer(0, m[0]), writer(1, m[1]), writer(2, m[2])];

    // Meanwhile three history clients (one per member, moving to a survivor when theirs dies) run gets, puts and
    // compare-and-swaps on three shared keys over gRPC; the recorded history must be linearizable.
    const KV = loadEtcdProto().etcdserverpb.KV;
    const stubs = new Map(m.map((x) => [x, new KV(x.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as KvStub]));
    const drivers = new Map([...stubs].map(([x, stub]) => [x, grpcDriver(stub)]));
    const history = new History<KvInput, KvOutput>();
    let recording = true;
    let seq = 0;
    const recorder = async (cl: number) => {
      let at = m[cl];
      let rand = cl * 7919 + 1;
      const next = () => (rand = (rand * 1103515245 + 12345) & 0x7fffffff);
      for (let n = 0; recording && n < 3000; n++) {
        const key = `h/${'abc'[next() % 3]}`;
        const roll = next() % 10;
        const value = `c${cl}-${seq++}`;
        const op = roll < 4 ? kv.get(key) : roll < 7 ? kv.put(key, value) : kv.cas(key, next() % 2 ? null : `c${next() % 3}-${next() % seq}`, value);
        const ok = await recordKvOp(history, cl, drivers.get(at)!, op);
        if (!ok && killed && at === leader) at = survivors[cl % survivors.length];
        await new Promise((res) => setTimeout(res, ok ? 5 : 100));
      }
    };
    const recorders = [0, 1, 2].map((cl) => recorder(cl));
    await eventually(async () => {
      if (acked.size < 6) throw new Error('not enough writes yet');
    }, 20000, 20);
    const killedAt = Date.now();
    await c.kill(leader);
    killed = true;

    // A new leader among the survivors, in a later term.
    const next = await agreedLeader(survivors);
    const electedMs = Date.now() - killedAt;
    expect(next.leader).not.toBe(leader);
    expect(next.rows[0].raftTerm).toBeGreaterThan(oldTerm);
    await Promise.all(writers);
    expect(acked.size).toBe(36);
    recording = false;
    await Promise.all(recorders);
    for (const stub of stubs.values()) stub.close();
    const ops = history.operations();
    expect(ops.filter((o) => o.status === 'ok' && o.input.type !== 'get').length).toBeGreaterThan(20);
    assertLinearizable(history, kvModel, { timeoutMs: 60000 });

    // Every acknowledged write is there, on both survivors.
    for (const x of survivors) {
      const out = await ctl(x.endpoint, ['get', '--prefix', 'fo/']);
      const lines = out.split('\n').filter(Boolean);
      const got = new Map<string, string>();
      for (let i = 0; i + 1 < lines.length; i += 2) got.set(lines[i], lines[i + 1]);
      for (const [k, v] of acked) expect([k, got.get(k)]).toEqual([k, v]);
    }

    // The old leader restarts on its data dir and catches up from the log.
    await ctl(survivors[0].endpoint, ['put', 'fo/final', 'after-restart']);
    await c.restart(leader);
    await eventually(async () => {
      const v = await ctl(leader.endpoint, ['get', 'fo/final', '--print-value-only', '--consistency=s']);
      if (v !== 'after-restart\n') throw new Error(`old leader has ${JSON.stringify(v)}`);
    }, 15000);
    for (const [k, v] of acked) expect([k, (await ctl(leader.endpoint, ['get', k, '--print-value-only', '--consistency=s'])).trim()]).toEqual([k, v]);
    await agreedLeader(m);

    // Same keyspace everywhere.
    const hashes = await eventually(async () => {
      const out = await ctl(m[0].endpoint, ['endpoint', 'hashkv', '--cluster']);
      const hs = out.split('\n').filter(Boolean).map((l) => l.split(', ')[1]);
      if (hs.length !== 3 || new Set(hs).size !== 1) throw new Error(`hashes differ:\n${out}`);
      return hs;
    }, 10000);
    expect(hashes).toHaveLength(3);
    // eslint-disable-next-line no-console
    console.log(`failover: new leader ${electedMs} ms after kill -9 (${failedAttempts} client retries); history of ${ops.length} operations linearizable`);
  }, 90000);
});
