// Unit tests of the Redis backend's non-Lua parts on ioredis-mock (its Lua VM does not run the backend's script
// faithfully: the script itself is covered against a real redis-server in test/client/redis*.spec.ts).
import RedisMock from 'ioredis-mock';
import type Redis from 'ioredis';
import { ClientError, ClientErrorCode } from '../errors';
import type { KeyValue, WatchBatch } from '../types';
import { shapeRange, toClientError } from './redis-client';
import { RedisWatchHub } from './watch';

const b = (s: string) => Buffer.from(s);
const kv = (key: string, value: string, create: number, mod: number, version = 1): KeyValue => ({ key: b(key), value: b(value), createRevision: create, modRevision: mod, version, lease: 0n });

describe('shapeRange (etcd range options over the script result)', () => {
  const all = [kv('a', 'zz', 2, 9, 3), kv('b', 'yy', 3, 3), kv('c', 'xx', 4, 7, 2)];

  it('sorts, limits, reports more and the count of the whole range', () => {
    const r = shapeRange({ key: b('a'), rangeEnd: b('d'), sortTarget: 'mod', sortOrder: 'descend', limit: 2 }, all, 10);
    expect(r.kvs.map((x) => x.key.toString())).toEqual(['a', 'c']);
    expect(r.more).toBe(true);
    expect(r.count).toBe(3);
    expect(r.header.revision).toBe(10);
  });

  it('a non-key target without an order sorts ascending, as etcd does', () => {
    expect(shapeRange({ key: b('a'), sortTarget: 'value' }, all, 10).kvs.map((x) => x.value.toString())).toEqual(['xx', 'yy', 'zz']);
  });

  it('applies the mod/create revision filters, keysOnly and countOnly', () => {
    expect(shapeRange({ key: b('a'), minModRevision: 4, maxCreateRevision: 3 }, all, 10).kvs.map((x) => x.key.toString())).toEqual(['a']);
    expect(shapeRange({ key: b('a'), keysOnly: true }, all, 10).kvs.map((x) => x.value.length)).toEqual([0, 0, 0]);
    const counted = shapeRange({ key: b('a'), countOnly: true }, all, 10);
    expect([counted.kvs.length, counted.count]).toEqual([0, 3]);
  });
});

describe('toClientError', () => {
  it("maps the script's etcd messages to etcd's codes", () => {
    const e = toClientError(Object.assign(new Error('ERR Error running script: etcdserver: requested lease not found'), { name: 'ReplyError' }));
    expect(e).toBeInstanceOf(ClientError);
    expect([e.code, e.message]).toEqual([ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found']);
    expect(toClientError(new Error('Connection is closed.')).code).toBe(ClientErrorCode.UNAVAILABLE);
  });
});

describe('RedisWatchHub on ioredis-mock', () => {
  const prefix = '{t}:';
  let redis: Redis;
  let hub: RedisWatchHub;
  let current = 0;

  const append = async (rev: number, events: Array<Record<string, string>>) => {
    for (let i = 0; i < events.length; i++) await redis.xadd(`${prefix}log`, `${rev}-${i}`, ...Object.entries(events[i]).flat());
    current = rev;
    await redis.publish(`${prefix}events`, String(rev));
  };

  beforeEach(() => {
    redis = new RedisMock({ data: {} }) as unknown as Redis;
    current = 0;
    hub = new RedisWatchHub(redis, prefix, async () => [current, Number((await redis.get(`${prefix}compact`)) ?? 0)]);
  });

  afterEach(async () => {
    await hub.close();
    redis.disconnect();
  });

  const waitFor = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(cond()).toBe(true);
  };

  it('replays the log from the start revision, one batch per revision, filtered by key range, prevKv on request', async () => {
    await append(5, [
      { t: 'put', k: 'app/a', v: '1', c: '5', m: '5', ver: '1', l: '0' },
      { t: 'put', k: 'other', v: 'x', c: '5', m: '5', ver: '1', l: '0' },
    ]);
    await append(6, [{ t: 'delete', k: 'app/a', v: '', c: '0', m: '6', ver: '0', l: '0', pv: '1', pc: '5', pm: '5', pver: '1', pl: '0' }]);
    const batches: WatchBatch[] = [];
    const w = hub.watch({ key: b('app/'), rangeEnd: b('app0'), startRevision: 5, prevKv: true }, { onEvents: (batch) => batches.push(batch) });
    await w.ready;
    await waitFor(() => batches.length === 2);
    expect(batches.map((x) => [x.header.revision, x.events.map((e) => `${e.type} ${e.kv.key.toString()}`)])).toEqual([
      [5, ['put app/a']],
      [6, ['delete app/a']],
    ]);
    expect(batches[1].events[0].prevKv?.value.toString()).toBe('1');
    expect(w.lastRevision).toBe(6);

    // a new write, announced on the channel
    await append(7, [{ t: 'put', k: 'app/b', v: '2', c: '7', m: '7', ver: '1', l: '0' }]);
    await waitFor(() => batches.length === 3);
    expect(batches[2].events[0].kv).toMatchObject({ modRevision: 7, createRevision: 7, version: 1 });
  });

  it('filters noput and drops prevKv when not asked for', async () => {
    await append(3, [{ t: 'put', k: 'k', v: '1', c: '3', m: '3', ver: '1', l: '0', pv: '0', pc: '2', pm: '2', pver: '1', pl: '0' }]);
    await append(4, [{ t: 'delete', k: 'k', v: '', c: '0', m: '4', ver: '0', l: '0' }]);
    const batches: WatchBatch[] = [];
    const w = hub.watch({ key: b('k'), startRevision: 1, filters: ['noput'] }, { onEvents: (batch) => batches.push(batch) });
    await w.ready;
    await waitFor(() => batches.length === 1);
    expect(batches[0].events.map((e) => [e.type, e.prevKv])).toEqual([['delete', undefined]]);
  });

  it('reports a start below the compacted revision and ends the watch', async () => {
    await append(8, [{ t: 'put', k: 'k', v: '1', c: '8', m: '8', ver: '1', l: '0' }]);
    await redis.set(`${prefix}compact`, '8');
    let compacted = 0;
    const events: WatchBatch[] = [];
    hub.watch({ key: b('k'), startRevision: 3 }, { onEvents: (batch) => events.push(batch), onCompacted: (rev) => (compacted = rev) });
    await waitFor(() => compacted > 0);
    expect(compacted).toBe(8);
    expect(events).toEqual([]);
  });
});
