// RedisClient specifics against a real redis-server: lease expiry as revisioned deletes, the bounded log,
// binary keys, atomic compare-and-swap under contention, what the backend refuses.
import { ClientError, ClientErrorCode, type WatchEvent } from '@nestcd/client';
import { RedisClient } from '@nestcd/client/redis';
import { waitFor } from './contract';
import { startRedisServer, type RedisServerHandle } from './redis-server';

const b = (s: string) => Buffer.from(s);

describe('RedisClient on a real redis-server', () => {
  let server: RedisServerHandle;
  const clients: RedisClient[] = [];
  const open = async (o: Partial<ConstructorParameters<typeof RedisClient>[0] & object> = {}) => {
    const c = await RedisClient.open({ redis: server.url, ...o });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    await server?.stop();
  });

  it('an expired lease is revoked at a new revision: its keys are deleted and watchers see the deletes', async () => {
    const c = await open({ keyPrefix: '{exp}:', reapIntervalMs: 100 });
    const lease = await c.leaseGrant(1);
    const put = await c.put({ key: b('session/1'), value: b('alive'), lease: lease.id });
    await c.put({ key: b('plain'), value: b('stays') });
    const events: WatchEvent[] = [];
    const w = c.watch({ key: b('session/'), rangeEnd: b('session0') }, { onEvents: (batch) => events.push(...batch.events) });
    await w.ready;
    await waitFor(() => events.length === 1, 5000, 'the delete of the expired key');
    expect(events[0].type).toBe('delete');
    expect(events[0].kv.modRevision).toBe(put.header.revision + 2);
    expect((await c.range({ key: b('session/1') })).kvs).toEqual([]);
    expect((await c.range({ key: b('plain') })).count).toBe(1);
    expect((await c.leaseTimeToLive(lease.id)).ttl).toBe(-1);
    await expect(c.leaseKeepAliveOnce(lease.id)).rejects.toMatchObject({ code: ClientErrorCode.NOT_FOUND });
  });

  it('the event log is bounded: a watcher further behind than it is told it was compacted', async () => {
    const c = await open({ keyPrefix: '{bounded}:', logMaxLen: 10 });
    const first = await c.put({ key: b('k'), value: b('0') });
    for (let i = 1; i < 30; i++) await c.put({ key: b('k'), value: b(String(i)) });
    let compacted = 0;
    c.watch({ key: b('k'), startRevision: first.header.revision }, { onEvents: () => undefined, onCompacted: (rev) => (compacted = rev) });
    await waitFor(() => compacted > 0, 5000, 'onCompacted');
    expect(compacted).toBeGreaterThan(first.header.revision + 15);
    // a watcher within the log gets every event
    const recent: number[] = [];
    c.watch({ key: b('k'), startRevision: compacted }, { onEvents: (batch) => recent.push(...batch.events.map((e) => e.kv.modRevision)) });
    await waitFor(() => recent.length > 0 && recent[recent.length - 1] === first.header.revision + 29, 5000, 'the recent events');
    expect(recent[0]).toBe(compacted);
  });

  it('binary keys and values round-trip; ranges use byte order', async () => {
    const c = await open({ keyPrefix: '{bin}:' });
    const keys = [Buffer.from([0x00, 0x01]), Buffer.from([0x7f]), Buffer.from([0xff, 0x00, 0xfe])];
    for (const k of keys) await c.put({ key: k, value: Buffer.concat([k, Buffer.from([0, 0xff])]) });
    const all = await c.range({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]) });
    expect(all.kvs.map((kv) => kv.key)).toEqual(keys);
    expect(all.kvs[2].value).toEqual(Buffer.from([0xff, 0x00, 0xfe, 0, 0xff]));
  });

  it('compare-and-swap is atomic: 4 clients x 25 increments give an exact count', async () => {
    const workers = await Promise.all([0, 1, 2, 3].map(() => open({ keyPrefix: '{cas}:' })));
    await workers[0].put({ key: b('counter'), value: b('0') });
    await Promise.all(
      workers.map(async (w) => {
        for (let done = 0; done < 25; ) {
          const cur = (await w.range({ key: b('counter') })).kvs[0];
          const next = String(Number(cur.value.toString()) + 1);
          const res = await w.txn({ compare: [{ key: b('counter'), target: 'mod', result: 'equal', value: cur.modRevision }], success: [{ put: { key: b('counter'), value: b(next) } }], failure: [] });
          if (res.succeeded) done++;
        }
      }),
    );
    expect((await workers[0].range({ key: b('counter') })).kvs[0].value.toString()).toBe('100');
  });

  it('refuses what it cannot do, with a clear error', async () => {
    const c = await open({ keyPrefix: '{refuse}:' });
    const first = await c.put({ key: b('k'), value: b('1') });
    await c.put({ key: b('k'), value: b('2') });
    const past = await c.range({ key: b('k'), revision: first.header.revision }).catch((e: unknown) => e);
    expect(past).toBeInstanceOf(ClientError);
    expect((past as ClientError).code).toBe(ClientErrorCode.UNIMPLEMENTED);
    await expect(c.range({ key: b('k'), revision: first.header.revision + 5 })).rejects.toMatchObject({ code: ClientErrorCode.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision is a future revision' });
    await expect(c.compact(first.header.revision + 5)).rejects.toMatchObject({ message: 'etcdserver: mvcc: required revision is a future revision' });
    await expect(c.txn({ compare: [], success: [{ txn: { compare: [], success: [], failure: [] } }], failure: [] })).rejects.toMatchObject({ code: ClientErrorCode.UNIMPLEMENTED });
    await expect(c.put({ key: b('x'), value: b('v'), lease: 999999n })).rejects.toMatchObject({ code: ClientErrorCode.NOT_FOUND, message: 'etcdserver: requested lease not found' });
    const lease = await c.leaseGrant(30, 4242n);
    expect(lease.id).toBe(4242n);
    await expect(c.leaseGrant(30, 4242n)).rejects.toMatchObject({ code: ClientErrorCode.FAILED_PRECONDITION, message: 'etcdserver: lease already exists' });
  });
});
