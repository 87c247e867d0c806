// The KvClient contract, run against every backend (embedded, nestcd and etcd over gRPC, Redis). A backend
// harness hands out clients; the optional controls exercise what only some backends can do (cut the
// connection of one client while the store stays up).
import { ClientError, ClientErrorCode, type KvClient, type WatchBatch, type WatchEvent } from '@nestcd/client';

export interface ContractHarness {
  /** a fresh client on the shared store. */
  client(): Promise<KvClient>;
  /**
   * a client whose connection the test can cut: `cut()` drops it (and refuses reconnects until `restore()`).
   * Absent for backends without a connection (embedded).
   */
  cuttableClient?(): Promise<{ client: KvClient; cut(): Promise<void>; restore(): Promise<void> }>;
  /** whether compaction makes old revisions unreadable (etcd semantics); Redis only trims its event log. */
  historicReads: boolean;
  stop(): Promise<void>;
}

const b = (s: string) => Buffer.from(s);
const s = (buf: Buffer) => buf.toString();
let seq = 0;
const uniq = (name: string) => `/contract/${process.pid}/${Date.now().toString(36)}-${seq++}/${name}/`;

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function expectClientError(p: Promise<unknown>, code: ClientErrorCode, message: string | RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ClientError);
  expect((err as ClientError).code).toBe(code);
  if (typeof message === 'string') expect((err as ClientError).message).toBe(message);
  else expect((err as ClientError).message).toMatch(message);
}

export interface ContractCapabilities {
  /** the backend has a connection a test can cut (every backend but the embedded one). */
  cuttable: boolean;
}

export function kvClientContract(backend: string, setup: () => Promise<ContractHarness>, caps: ContractCapabilities): void {
  // the embedded engine has no connection to lose: the connection tests are only defined for the others
  const itWithConnection = (name: string, fn: () => Promise<void>) => {
    if (caps.cuttable) it(name, fn);
  };
  describe(`KvClient contract: ${backend}`, () => {
    let h: ContractHarness;
    let c: KvClient;
    const extra: KvClient[] = [];

    beforeAll(async () => {
      h = await setup();
      c = await h.client();
    }, 60_000);

    afterAll(async () => {
      for (const x of extra) await x.close();
      await c?.close();
      await h?.stop();
    }, 30_000);

    const other = async () => {
      const x = await h.client();
      extra.push(x);
      return x;
    };

    it('put, range (single, prefix, from-key, limit, sort, keys/count only, historic) and delete', async () => {
      const p = uniq('kv');
      const first = await c.put({ key: b(p + 'a'), value: b('1') });
      await c.put({ key: b(p + 'b'), value: b('2') });
      const third = await c.put({ key: b(p + 'c'), value: b('3'), prevKv: true });
      expect(third.prevKv).toBeUndefined();
      expect(third.header.revision).toBe(first.header.revision + 2);

      const one = await c.range({ key: b(p + 'b') });
      expect(one.kvs.map((kv) => [s(kv.key), s(kv.value)])).toEqual([[p + 'b', '2']]);
      expect(one.kvs[0]).toMatchObject({ createRevision: first.header.revision + 1, modRevision: first.header.revision + 1, version: 1, lease: 0n });
      expect(one.count).toBe(1);

      const all = await c.range({ key: b(p), rangeEnd: b(p.slice(0, -1) + '0') });
      expect(all.kvs.map((kv) => s(kv.key))).toEqual([p + 'a', p + 'b', p + 'c']);

      const limited = await c.range({ key: b(p), rangeEnd: b(p.slice(0, -1) + '0'), limit: 2, sortOrder: 'descend', sortTarget: 'key' });
      expect(limited.kvs.map((kv) => s(kv.key))).toEqual([p + 'c', p + 'b']);
      expect(limited.more).toBe(true);
      expect(limited.count).toBe(3);

      const keysOnly = await c.range({ key: b(p + 'b'), rangeEnd: b(p.slice(0, -1) + '0'), keysOnly: true });
      expect(keysOnly.kvs.map((kv) => [s(kv.key), kv.value.length])).toEqual([[p + 'b', 0], [p + 'c', 0]]);
      const countOnly = await c.range({ key: b(p), rangeEnd: b(p.slice(0, -1) + '0'), countOnly: true });
      expect(countOnly.kvs).toEqual([]);
      expect(countOnly.count).toBe(3);

      const updated = await c.put({ key: b(p + 'a'), value: b('1b'), prevKv: true });
      expect(s(updated.prevKv!.value)).toBe('1');
      expect(updated.prevKv!.version).toBe(1);
      const now = await c.range({ key: b(p + 'a') });
      expect(now.kvs[0]).toMatchObject({ version: 2, createRevision: first.header.revision, modRevision: updated.header.revision });
      if (h.historicReads) {
        const before = await c.range({ key: b(p + 'a'), revision: first.header.revision });
        expect(s(before.kvs[0].value)).toBe('1');
      }

      const del = await c.deleteRange({ key: b(p + 'b'), rangeEnd: b(p.slice(0, -1) + '0'), prevKv: true });
      expect(del.deleted).toBe(2);
      expect(del.prevKvs.map((kv) => s(kv.key)).sort()).toEqual([p + 'b', p + 'c']);
      const left = await c.range({ key: b(p), rangeEnd: b(p.slice(0, -1) + '0') });
      expect(left.kvs.map((kv) => s(kv.key))).toEqual([p + 'a']);
      const none = await c.deleteRange({ key: b(p + 'zzz') });
      expect(none.deleted).toBe(0);
    });

    it('put with ignoreValue on a missing key fails with etcd\'s error', async () => {
      await expectClientError(c.put({ key: b(uniq('iv') + 'x'), value: Buffer.alloc(0), ignoreValue: true }), ClientErrorCode.INVALID_ARGUMENT, 'etcdserver: key not found');
    });

    it('txn: compare-and-swap on version, value, create and mod revision; nested responses', async () => {
      const p = uniq('txn');
      const k = b(p + 'lock');
      const create = () =>
        c.txn({
          compare: [{ key: k, target: 'create', result: 'equal', value: 0 }],
          success: [{ put: { key: k, value: b('owner-1') } }],
          failure: [{ range: { key: k } }],
        });
      const won = await create();
      expect(won.succeeded).toBe(true);
      expect('put' in won.responses[0]).toBe(true);
      const lost = await create();
      expect(lost.succeeded).toBe(false);
      const got = lost.responses[0];
      if (!('range' in got)) throw new Error('expected a range response');
      expect(s(got.range.kvs[0].value)).toBe('owner-1');
      expect(got.range.kvs[0].modRevision).toBe(won.header.revision);

      const swap = await c.txn({
        compare: [
          { key: k, target: 'value', result: 'equal', value: b('owner-1') },
          { key: k, target: 'mod', result: 'equal', value: won.header.revision },
          { key: k, target: 'version', result: 'less', value: 2 },
        ],
        success: [{ put: { key: k, value: b('owner-2'), prevKv: true } }, { deleteRange: { key: b(p + 'other') } }, { range: { key: k } }],
        failure: [],
      });
      expect(swap.succeeded).toBe(true);
      expect(swap.responses).toHaveLength(3);
      const r = swap.responses[2];
      if (!('range' in r)) throw new Error('expected a range response');
      expect(s(r.range.kvs[0].value)).toBe('owner-2');
      expect(swap.header.revision).toBe(won.header.revision + 1);

      const notEqual = await c.txn({ compare: [{ key: k, target: 'value', result: 'not_equal', value: b('owner-2') }], success: [{ deleteRange: { key: k } }], failure: [] });
      expect(notEqual.succeeded).toBe(false);
      expect((await c.range({ key: k })).kvs).toHaveLength(1);
    });

    it('watch: puts and deletes in order with prevKv, replay from a past revision, cancel', async () => {
      const p = uniq('watch');
      const w2 = await other();
      const start = await w2.put({ key: b(p + 'a'), value: b('0') });
      const seen: WatchEvent[] = [];
      const watch = c.watch({ key: b(p), rangeEnd: b(p.slice(0, -1) + '0'), startRevision: start.header.revision, prevKv: true }, { onEvents: (batch) => seen.push(...batch.events) });
      await watch.ready;
      await w2.put({ key: b(p + 'a'), value: b('1') });
      await w2.deleteRange({ key: b(p + 'a') });
      await w2.put({ key: b(p + 'b'), value: b('2') });
      await waitFor(() => seen.length >= 4, 10_000, 'four watch events');
      expect(seen.map((e) => [e.type, s(e.kv.key), s(e.kv.value)])).toEqual([
        ['put', p + 'a', '0'],
        ['put', p + 'a', '1'],
        ['delete', p + 'a', ''],
        ['put', p + 'b', '2'],
      ]);
      expect(seen.map((e) => e.kv.modRevision)).toEqual([0, 1, 2, 3].map((i) => start.header.revision + i));
      expect(s(seen[1].prevKv!.value)).toBe('0');
      expect(s(seen[2].prevKv!.value)).toBe('1');
      expect(watch.lastRevision).toBe(start.header.revision + 3);
      await watch.cancel();
      await w2.put({ key: b(p + 'c'), value: b('after cancel') });
      await new Promise((r) => setTimeout(r, 200));
      expect(seen).toHaveLength(4);
    });

    it('watch from a compacted revision reports the compaction', async () => {
      const p = uniq('compacted');
      const first = await c.put({ key: b(p + 'x'), value: b('1') });
      const second = await c.put({ key: b(p + 'x'), value: b('2') });
      await c.compact(second.header.revision);
      if (h.historicReads) {
        await expectClientError(c.range({ key: b(p + 'x'), revision: first.header.revision }), ClientErrorCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
      }
      let compactedAt = 0;
      const events: WatchEvent[] = [];
      c.watch({ key: b(p + 'x'), startRevision: first.header.revision }, { onEvents: (batch) => events.push(...batch.events), onCompacted: (rev) => (compactedAt = rev) });
      await waitFor(() => compactedAt > 0, 10_000, 'the compaction to be reported');
      expect(compactedAt).toBeGreaterThanOrEqual(second.header.revision);
      expect(events).toEqual([]);
    });

    it('leases: grant, attach, time to live with keys, list, revoke deletes the keys', async () => {
      const p = uniq('lease');
      const grant = await c.leaseGrant(30);
      expect(grant.ttl).toBe(30);
      expect(grant.id).not.toBe(0n);
      await c.put({ key: b(p + 'k'), value: b('v'), lease: grant.id });
      const got = await c.range({ key: b(p + 'k') });
      expect(got.kvs[0].lease).toBe(grant.id);
      const ttl = await c.leaseTimeToLive(grant.id, true);
      expect(ttl.grantedTtl).toBe(30);
      expect(ttl.ttl).toBeGreaterThan(25);
      expect(ttl.keys.map(s)).toEqual([p + 'k']);
      expect(await c.leaseLeases()).toContain(grant.id);
      expect(await c.leaseKeepAliveOnce(grant.id)).toBeGreaterThan(25);
      await c.leaseRevoke(grant.id);
      expect((await c.range({ key: b(p + 'k') })).kvs).toEqual([]);
      expect((await c.leaseTimeToLive(grant.id)).ttl).toBe(-1);
      await expectClientError(c.leaseRevoke(grant.id), ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found');
      await expectClientError(c.leaseKeepAliveOnce(grant.id), ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found');
      await expectClientError(c.put({ key: b(p + 'k2'), value: b('v'), lease: grant.id }), ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found');
    });

    it('keep-alive keeps a lease past its TTL and reports its loss once the server revokes it', async () => {
      const grant = await c.leaseGrant(2);
      let renewals = 0;
      let lostAt = 0;
      let lostError: Error | undefined;
      const ka = c.leaseKeepAlive(grant.id, {
        onKeepAlive: () => renewals++,
        onLost: (err) => {
          lostAt = Date.now();
          lostError = err;
        },
      });
      await new Promise((r) => setTimeout(r, 2600));
      expect(lostAt).toBe(0);
      expect(renewals).toBeGreaterThanOrEqual(2);
      expect((await c.leaseTimeToLive(grant.id)).ttl).toBeGreaterThan(0);
      const revokedAt = Date.now();
      await (await other()).leaseRevoke(grant.id);
      await waitFor(() => lostAt > 0, 5000, 'onLost');
      expect(lostAt - revokedAt).toBeLessThanOrEqual(2000 + 500);
      expect(lostError).toBeInstanceOf(ClientError);
      ka.close();
    });

    it('member list and status describe the store', async () => {
      const members = await c.memberList();
      expect(members.members.length).toBeGreaterThanOrEqual(1);
      expect(members.members[0].name.length).toBeGreaterThan(0);
      const status = await c.status();
      expect(status.version).toMatch(/^\d+\.\d+/);
      expect(status.header.revision).toBeGreaterThan(0);
    });

    itWithConnection('watch resumes after a forced disconnect: every event once, in order', async () => {
      const p = uniq('resume');
      const { client: watcher, cut, restore } = await h.cuttableClient!();
      extra.push(watcher);
      const writer = await other();
      const seen: number[] = [];
      let disconnects = 0;
      let reconnects = 0;
      const w = watcher.watch(
        { key: b(p), rangeEnd: b(p.slice(0, -1) + '0') },
        {
          onEvents: (batch: WatchBatch) => seen.push(...batch.events.map((e) => Number(s(e.kv.value)))),
          onDisconnected: () => disconnects++,
          onReconnected: () => reconnects++,
        },
      );
      await w.ready;
      const total = 60;
      for (let i = 0; i < total; i++) {
        if (i === 20) await cut();
        if (i === 40) await restore();
        await writer.put({ key: b(p + (i % 7)), value: b(String(i)) });
      }
      await waitFor(() => seen.length >= total, 20_000, `${total} events (have ${seen.length})`);
      await new Promise((r) => setTimeout(r, 200));
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
      expect(disconnects).toBeGreaterThanOrEqual(1);
      expect(reconnects).toBeGreaterThanOrEqual(1);
      await w.cancel();
    });

    itWithConnection('keep-alive loss is detected within the TTL when the client is cut off', async () => {
      const { client: holder, cut, restore } = await h.cuttableClient!();
      extra.push(holder);
      const grant = await holder.leaseGrant(2);
      let confirmedAt = 0;
      let lostAt = 0;
      holder.leaseKeepAlive(grant.id, { onKeepAlive: () => (confirmedAt = Date.now()), onLost: () => (lostAt = Date.now()) });
      await waitFor(() => confirmedAt > 0, 5000, 'a first keep-alive');
      await cut();
      const cutAt = Date.now();
      await waitFor(() => lostAt > 0, 5000, 'onLost while cut off');
      // lost no later than the TTL after the last request the server confirmed
      expect(lostAt - cutAt).toBeLessThanOrEqual(2000 + 300);
      await restore();
    });
  });
}
