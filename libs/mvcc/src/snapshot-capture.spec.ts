// A snapshot captured in steps must come out byte for byte as the snapshot taken at once when the capture began,
// whatever writes, deletes, lease changes and compactions happen between its steps.
import fc from 'fast-check';
import { EtcdError } from '@nestcd/errors';
import { type Command, MvccStore } from './index';
import { b, manualScheduler } from './test-util';

type Op =
  | { t: 'put'; k: number; v: number; lease: boolean }
  | { t: 'del'; k: number; range: boolean }
  | { t: 'grant' }
  | { t: 'revoke' }
  | { t: 'compact'; back: number }
  | { t: 'txn'; k: number; v: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('put' as const), k: fc.nat(12), v: fc.nat(5), lease: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.nat(12), range: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('grant' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('revoke' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('compact' as const), back: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('txn' as const), k: fc.nat(12), v: fc.nat(5) }) },
);

/** Applies generated ops to a store; refusals (a compacted revision, a lease gone) are part of the game. */
function driver(store: MvccStore) {
  const leases: bigint[] = [];
  let nextLease = 1n;
  const key = (k: number) => b(`key/${String(k).padStart(2, '0')}`);
  return (o: Op): void => {
    let cmd: Command;
    switch (o.t) {
      case 'put':
        cmd = { put: { key: key(o.k), value: b(`v${o.v}`.repeat(o.v + 1)), lease: o.lease && leases.length > 0 ? leases[o.k % leases.length] : undefined } };
        break;
      case 'del':
        cmd = { deleteRange: { key: key(o.k), rangeEnd: o.range ? key(o.k + 3) : undefined } };
        break;
      case 'grant':
        leases.push(nextLease);
        cmd = { leaseGrant: { id: nextLease++, ttl: 60 } };
        break;
      case 'revoke':
        if (leases.length === 0) return;
        cmd = { leaseRevoke: { id: leases.shift()! } };
        break;
      case 'compact':
        cmd = { compaction: { revision: Math.max(1, store.currentRevision - o.back) } };
        break;
      case 'txn':
        cmd = { txn: { compare: [], success: [{ requestPut: { key: key(o.k), value: b(`t${o.v}`) } }, { requestDeleteRange: { key: key(o.k + 1) } }], failure: [] } };
        break;
    }
    try {
      store.apply(cmd);
    } catch (err) {
      if (!(err instanceof EtcdError)) throw err;
    }
  };
}

/** Captures the store is keeping key records for. */
function captureCount(store: MvccStore): number {
  return (store as unknown as { captures: Set<unknown> }).captures.size;
}

describe('MvccStore.captureSnapshot', () => {
  it('yields the bytes of snapshot() at its start, whatever is applied between its steps', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.array(fc.tuple(fc.array(op, { maxLength: 4 }), fc.integer({ min: 1, max: 4 })), { maxLength: 40 }),
        (before, during) => {
          const store = new MvccStore({ schedule: manualScheduler().schedule });
          // the same ops on a store with no capture running: the live state must not depend on one
          const twin = new MvccStore({ schedule: manualScheduler().schedule });
          const apply = driver(store);
          const applyTwin = driver(twin);
          for (const o of before) {
            apply(o);
            applyTwin(o);
          }
          const expected = store.snapshot();
          const capture = store.captureSnapshot();
          let done = false;
          for (const [ops, keys] of during) {
            for (const o of ops) {
              apply(o);
              applyTwin(o);
            }
            if (!done) done = capture.step(keys);
          }
          expect(store.snapshot().equals(twin.snapshot())).toBe(true);
          expect(store.hashKV(0)).toEqual(twin.hashKV(0));
          if (!done) expect(capture.step(Infinity)).toBe(true);
          const got = capture.finish();
          expect(got.equals(expected)).toBe(true);
          // and it is a snapshot the store restores from
          expect(MvccStore.restore(got).snapshot().equals(expected)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('streamed with a prefix: the chunks taken after each step, joined, are the prefix and snapshot() at its start', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.integer({ min: 1, max: 120 }),
        fc.array(fc.tuple(fc.array(op, { maxLength: 4 }), fc.integer({ min: 1, max: 6 })), { maxLength: 60 }),
        (before, prefix, chunkBytes, during) => {
          const store = new MvccStore({ schedule: manualScheduler().schedule });
          const apply = driver(store);
          for (const o of before) apply(o);
          const expected = Buffer.concat([prefix, store.snapshot()]);
          const capture = store.captureSnapshot({ prefix: Buffer.from(prefix), chunkBytes });
          const chunks: Buffer[] = [];
          let done = false;
          /** a chunk ends at the first revision that reaches chunkBytes: at most one key and revision past it */
          const take = () => {
            const chunk = capture.take();
            chunks.push(Buffer.from(chunk)); // copied: the capture writes its next chunk over this one
            return chunk.length;
          };
          for (const [ops, budget] of during) {
            for (const o of ops) apply(o);
            if (done) break;
            done = capture.step(budget);
            take();
          }
          while (!done) {
            done = capture.step(Infinity);
            take();
          }
          expect(Buffer.concat(chunks).equals(expected)).toBe(true);
          expect(captureCount(store)).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a streamed step stops at about chunkBytes and reuses its buffer for the next chunk', () => {
    const store = new MvccStore();
    for (let i = 0; i < 100; i++) store.apply({ put: { key: b(`k${String(i).padStart(3, '0')}`), value: Buffer.alloc(100, i) } });
    const capture = store.captureSnapshot({ chunkBytes: 1000 });
    const sizes: number[] = [];
    const buffers = new Set<ArrayBufferLike>();
    let done = false;
    while (!done) {
      done = capture.step(Infinity);
      const chunk = capture.take();
      sizes.push(chunk.length);
      buffers.add(chunk.buffer);
    }
    // ~110 bytes a key: 10 keys to a chunk, the last one crossing 1000 bytes
    expect(Math.max(...sizes)).toBeLessThan(1000 + 130);
    expect(sizes.length).toBeGreaterThanOrEqual(10);
    expect(buffers.size).toBe(1);
  });

  it('encodes a few keys per step: the capture is unfinished until every key is in', () => {
    const store = new MvccStore();
    for (let i = 0; i < 10; i++) store.apply({ put: { key: b(`k${i}`), value: b('v') } });
    const capture = store.captureSnapshot();
    expect(() => capture.finish()).toThrow(/not finished/);
    const steps: boolean[] = [];
    for (let i = 0; i < 4; i++) steps.push(capture.step(3));
    expect(steps).toEqual([false, false, false, true]);
  });

  it('splits a key with many revisions across steps: a step does as many revisions, not keys', () => {
    const store = new MvccStore();
    for (let i = 0; i < 10; i++) store.apply({ put: { key: b('hot'), value: b(`v${i}`) } });
    const expected = store.snapshot();
    const capture = store.captureSnapshot();
    const steps: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      store.apply({ put: { key: b('hot'), value: b(`later${i}`) } }); // newer than the capture: left out
      steps.push(capture.step(3));
    }
    // 10 revisions of one key, 3 per step: the last step finds no further key and finishes
    expect(steps).toEqual([false, false, false, true]);
    expect(capture.finish().equals(expected)).toBe(true);
  });

  it('a cancelled capture cannot be finished, and the store no longer keeps key records for it', () => {
    const store = new MvccStore();
    for (let i = 0; i < 10; i++) store.apply({ put: { key: b(`k${i}`), value: b('v') } });
    const captures = { get size() { return captureCount(store); } };
    const capture = store.captureSnapshot();
    capture.step(3);
    expect(captures.size).toBe(1);
    capture.cancel();
    expect(captures.size).toBe(0);
    expect(() => capture.finish()).toThrow(/cancelled/);
    const done = store.captureSnapshot();
    done.step(Infinity);
    expect(captures.size).toBe(0); // a finished capture lets go too
  });
});

describe('MvccStore.restoreInSteps', () => {
  it('restores, whatever the step size, the store restore() gives at once (same bytes, same history)', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 7 }), (ops, revisionsPerStep) => {
        const source = new MvccStore();
        const apply = driver(source);
        for (const o of ops) apply(o);
        const snap = source.snapshot();
        const steps = MvccStore.restoreInSteps(snap);
        let stepsTaken = 1;
        while (!steps.step(revisionsPerStep)) stepsTaken++;
        const stepped = steps.finish();
        const atOnce = MvccStore.restore(snap);
        // a step reads as many revisions (a key's may span steps), the last one finishing the restore
        const tree = (source as unknown as { tree: { valuesArray(): Array<{ recs: unknown[] }> } }).tree;
        const revisions = tree.valuesArray().reduce((n, idx) => n + idx.recs.length, 0);
        expect(stepsTaken).toBe(Math.max(1, Math.ceil(revisions / revisionsPerStep)));
        expect(Buffer.compare(stepped.snapshot(), snap)).toBe(0);
        // the history too (what watchers replay): the same events in the same order, revision by revision
        const history = (s: MvccStore) => {
          const h = s as unknown as { histEvents: Array<{ type: number; sub: number; key: Buffer; modRevision: number }>; histStart: number[] };
          return { starts: h.histStart, events: h.histEvents.map((e) => `${e.type} ${e.key} ${e.modRevision}.${e.sub}`) };
        };
        expect(history(stepped)).toEqual(history(atOnce));
      }),
      { numRuns: 150 },
    );
  });

  it('hands out the store only after the last step', () => {
    const store = new MvccStore();
    for (let i = 0; i < 10; i++) store.apply({ put: { key: b(`k${i}`), value: b('v') } });
    const steps = MvccStore.restoreInSteps(store.snapshot());
    expect(steps.step(4)).toBe(false);
    expect(() => steps.finish()).toThrow(/not finished/);
    expect(steps.step(4)).toBe(false);
    expect(steps.step(4)).toBe(true);
    expect(steps.finish().currentRevision).toBe(11);
  });
});
