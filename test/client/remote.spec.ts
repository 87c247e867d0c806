// RemoteClient beyond the shared contract: namespace, failover and retry rules, auth, the admin calls nestcdctl
// uses, all against the real etcd 3.4 (and etcdctl as the reference where it tells the same thing).
import * as grpc from '@grpc/grpc-js';
import { ClientError, ClientErrorCode, RemoteClient, type WatchEvent } from '@nestcd/client';
import { etcdServices } from '../../libs/client/src/remote/proto';
import { etcdctl } from '../support/etcdctl';
import { freePort, startEtcd, type ServerHandle } from '../support/processes';
import { waitFor } from './contract';

const b = (s: string) => Buffer.from(s);
const s = (buf: Buffer) => buf.toString();

/** A gRPC server that answers every KV call with UNAVAILABLE and counts them: a member that is going away. */
async function unavailableMember(): Promise<{ endpoint: string; calls: Record<string, number>; stop(): Promise<void> }> {
  const server = new grpc.Server();
  const calls: Record<string, number> = {};
  const refuse = (name: string) => (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
    calls[name] = (calls[name] ?? 0) + 1;
    cb({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: server stopped' });
  };
  server.addService(etcdServices().KV.service, { range: refuse('range'), put: refuse('put'), deleteRange: refuse('deleteRange'), txn: refuse('txn'), compact: refuse('compact') });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return { endpoint: `http://127.0.0.1:${port}`, calls, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}

describe('RemoteClient against real etcd 3.4', () => {
  let etcd: ServerHandle;
  let raw: RemoteClient;
  const clients: RemoteClient[] = [];
  const open = (o: ConstructorParameters<typeof RemoteClient>[0]) => {
    const c = new RemoteClient(o);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    etcd = await startEtcd();
    raw = open({ endpoints: [etcd.endpoint] });
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.close();
    await etcd?.stop();
  });

  it('a namespace prefixes keys, ranges, txns, watches and lease keys, and strips the prefix from results', async () => {
    const ns = open({ endpoints: [etcd.endpoint], namespace: '/ns1/' });
    await raw.put({ key: b('/ns0/outside'), value: b('no') });
    await raw.put({ key: b('/ns2/outside'), value: b('no') });
    const seen: WatchEvent[] = [];
    const w = ns.watch({ key: b('a'), rangeEnd: Buffer.from([0]), prevKv: true }, { onEvents: (batch) => seen.push(...batch.events) });
    await w.ready;
    const lease = await ns.leaseGrant(60);
    await ns.put({ key: b('a'), value: b('1'), lease: lease.id });
    await ns.put({ key: b('b'), value: b('2') });
    expect((await raw.range({ key: b('/ns1/a') })).kvs.map((kv) => s(kv.value))).toEqual(['1']);
    const all = await ns.range({ key: b('\0'), rangeEnd: Buffer.from([0]) });
    expect(all.kvs.map((kv) => s(kv.key))).toEqual(['a', 'b']);
    const txn = await ns.txn({
      compare: [{ key: b('a'), target: 'value', result: 'equal', value: b('1') }],
      success: [{ put: { key: b('c'), value: b('3'), prevKv: true } }, { range: { key: b('a'), rangeEnd: b('z') } }],
      failure: [],
    });
    expect(txn.succeeded).toBe(true);
    const r = txn.responses[1];
    if (!('range' in r)) throw new Error('expected a range');
    expect(r.range.kvs.map((kv) => s(kv.key))).toEqual(['a', 'b', 'c']);
    expect((await ns.leaseTimeToLive(lease.id, true)).keys.map(s)).toEqual(['a']);
    const del = await ns.deleteRange({ key: b('\0'), rangeEnd: Buffer.from([0]), prevKv: true });
    expect(del.prevKvs.map((kv) => s(kv.key))).toEqual(['a', 'b', 'c']);
    expect((await raw.range({ key: b('/ns0/outside') })).count).toBe(1);
    expect((await raw.range({ key: b('/ns2/outside') })).count).toBe(1);
    await waitFor(() => seen.length === 6, 5000, 'six namespaced events');
    expect(seen.map((e) => `${e.type} ${s(e.kv.key)}`)).toEqual(['put a', 'put b', 'put c', 'delete a', 'delete b', 'delete c']);
    expect(s(seen[3].prevKv!.key)).toBe('a');
  });

  it('watchProgress: every watch of the stream hears the current revision (etcd RequestProgress)', async () => {
    const c = open({ endpoints: [etcd.endpoint] });
    const progress: number[][] = [[], []];
    const w1 = c.watch({ key: b('progress/a') }, { onEvents: () => undefined, onProgress: (rev) => progress[0].push(rev) });
    const w2 = c.watch({ key: b('progress/b') }, { onEvents: () => undefined, onProgress: (rev) => progress[1].push(rev) });
    await Promise.all([w1.ready, w2.ready]);
    const put = await raw.put({ key: b('progress/other'), value: b('x') });
    c.watchProgress();
    await waitFor(() => progress[0].length > 0 && progress[1].length > 0, 5000, 'progress notifications');
    expect(progress[0][0]).toBeGreaterThanOrEqual(put.header.revision);
    expect(progress[1][0]).toBe(progress[0][0]);
  });

  it('fails over from an unreachable endpoint to a live one, for reads and writes alike', async () => {
    const deadPort = await freePort();
    const c = open({ endpoints: [`http://127.0.0.1:${deadPort}`, etcd.endpoint], dialTimeoutMs: 500 });
    await c.put({ key: b('failover'), value: b('ok') });
    expect((await c.range({ key: b('failover') })).kvs.map((kv) => s(kv.value))).toEqual(['ok']);
    expect(c.activeEndpoint).toBe(etcd.endpoint);
  });

  it('retries an idempotent request on the next endpoint after UNAVAILABLE, but never a write', async () => {
    const going = await unavailableMember();
    try {
      const reader = open({ endpoints: [going.endpoint, etcd.endpoint] });
      await raw.put({ key: b('retry'), value: b('v') });
      expect((await reader.range({ key: b('retry') })).kvs.map((kv) => s(kv.value))).toEqual(['v']);
      expect(going.calls.range).toBe(1);

      const writer = open({ endpoints: [going.endpoint, etcd.endpoint] });
      const err = await writer.put({ key: b('retry'), value: b('twice?') }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClientError);
      expect((err as ClientError).code).toBe(ClientErrorCode.UNAVAILABLE);
      expect((err as ClientError).message).toBe('etcdserver: server stopped');
      expect(going.calls.put).toBe(1);
      expect((await raw.range({ key: b('retry') })).kvs.map((kv) => s(kv.value))).toEqual(['v']);
      // the failed write moved the client on: the next one goes to the live member
      await writer.put({ key: b('retry'), value: b('w') });
      expect(going.calls.put).toBe(1);
    } finally {
      await going.stop();
    }
  });

  it('an unreachable cluster fails within the deadline with "context deadline exceeded", as etcdctl reports it', async () => {
    const c = open({ endpoints: [`http://127.0.0.1:${await freePort()}`], dialTimeoutMs: 300, callTimeoutMs: 800 });
    const start = Date.now();
    const err = await c.range({ key: b('x') }).catch((e: unknown) => e);
    expect(Date.now() - start).toBeLessThan(3000);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe(ClientErrorCode.DEADLINE_EXCEEDED);
    expect((err as ClientError).message).toBe('context deadline exceeded');
  });

  it('maintenance calls: status, alarms, hash, hashKV, defragment, snapshot, member list', async () => {
    const status = await raw.status();
    expect(status.version).toMatch(/^3\.4\./);
    expect(status.leader).toBe(status.header.memberId);
    expect((await raw.alarmList()).alarms).toEqual([]);
    const hkv = await raw.hashKV(0);
    expect(hkv.hash).toBeGreaterThan(0);
    const ctl = await etcdctl(etcd.endpoint, ['endpoint', 'hashkv', '-w', 'json']);
    expect(ctl.code).toBe(0);
    expect(JSON.parse(ctl.stdout)[0].HashKV.hash).toBe(hkv.hash);
    expect((await raw.hash()).hash).toBeGreaterThan(0);
    await raw.defragment({ endpoint: etcd.endpoint });
    const chunks: Buffer[] = [];
    for await (const chunk of raw.snapshot()) chunks.push(chunk as Buffer);
    const snap = Buffer.concat(chunks);
    expect(snap.length).toBeGreaterThan(16 * 1024);
    const members = await raw.memberList();
    expect(members.members).toHaveLength(1);
    expect(members.members[0].id).toBe(status.header.memberId);
    expect(members.members[0].clientUrls).toEqual([etcd.endpoint]);
    const upd = await raw.memberUpdate(members.members[0].id, [etcd.peerUrl]);
    expect(upd.members[0].peerUrls).toEqual([etcd.peerUrl]);
    const bad = await raw.memberRemove(12345n).catch((e: unknown) => e);
    expect((bad as ClientError).message).toBe('etcdserver: member not found');
  });

  it('auth: users, roles, permissions; a client with credentials sends its token; auth disable', async () => {
    await raw.userAdd('root', 'rootpw');
    await raw.roleAdd('root');
    await raw.userGrantRole('root', 'root');
    await raw.roleAdd('reader');
    await raw.roleGrantPermission('reader', { permType: 'READ', key: b('pub/'), rangeEnd: b('pub0') });
    await raw.userAdd('alice', 'alicepw');
    await raw.userGrantRole('alice', 'reader');
    expect((await raw.userGet('alice')).roles).toEqual(['reader']);
    expect((await raw.userList()).names).toEqual(['alice', 'root']);
    expect((await raw.roleGet('reader')).perm).toEqual([{ permType: 'READ', key: b('pub/'), rangeEnd: b('pub0') }]);
    await raw.put({ key: b('pub/x'), value: b('hello') });
    await raw.authEnable();
    try {
      const anonymous = await raw.range({ key: b('pub/x') }).catch((e: unknown) => e);
      expect(anonymous).toBeInstanceOf(ClientError);
      expect((anonymous as ClientError).message).toBe('etcdserver: user name is empty');
      const alice = open({ endpoints: [etcd.endpoint], credentials: { user: 'alice', password: 'alicepw' } });
      expect((await alice.range({ key: b('pub/x') })).kvs.map((kv) => s(kv.value))).toEqual(['hello']);
      const denied = await alice.put({ key: b('pub/x'), value: b('no') }).catch((e: unknown) => e);
      expect((denied as ClientError).code).toBe(ClientErrorCode.PERMISSION_DENIED);
      expect((denied as ClientError).message).toBe('etcdserver: permission denied');
      const wrong = open({ endpoints: [etcd.endpoint], credentials: { user: 'alice', password: 'nope' } });
      const failed = await wrong.range({ key: b('pub/x') }).catch((e: unknown) => e);
      expect((failed as ClientError).message).toBe('etcdserver: authentication failed, invalid user ID or password');
      const root = open({ endpoints: [etcd.endpoint], credentials: { user: 'root', password: 'rootpw' } });
      const events: WatchEvent[] = [];
      const w = root.watch({ key: b('pub/x') }, { onEvents: (batch) => events.push(...batch.events) });
      await w.ready;
      await root.put({ key: b('pub/x'), value: b('by root') });
      await waitFor(() => events.length === 1, 5000, 'the event for root');
      await root.authDisable();
    } finally {
      await etcdctl(etcd.endpoint, ['--user', 'root:rootpw', 'auth', 'disable']);
    }
    expect((await raw.range({ key: b('pub/x') })).kvs.map((kv) => s(kv.value))).toEqual(['by root']);
  });
});
