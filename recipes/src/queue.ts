import type { KeyValue, KvClient, ResponseHeader } from '@nestcd/client';
import { bytes, prefixEnd } from './keys';
import { CoordinationError, abortReason } from './errors';
import { retryTransient, sleep } from './util';

/**
 * The ordered-key queue behind the fair lock and the election (etcd's concurrency package):
 * each contender's key is attached to its lease; the lowest create revision is at the head.
 */

/**
 * Writes `key` (if absent) attached to `lease` and, in the same txn, reads the queue: returns the key's create
 * revision and whether it is already at the head (so an uncontended acquire costs one round trip).
 */
export async function enqueue(client: KvClient, prefix: string, key: string, value: Buffer, lease: bigint): Promise<{ createRevision: number; header: ResponseHeader; first: boolean }> {
  const k = bytes(key);
  const p = bytes(prefix);
  const queue = { range: { key: p, rangeEnd: prefixEnd(p) } };
  // create-if-absent of our own key: sending it again after an ambiguous failure is safe
  const r = await retryTransient(() =>
    client.txn({
      compare: [{ key: k, target: 'create', result: 'equal', value: 0 }],
      success: [{ put: { key: k, value, lease } }, queue],
      failure: [{ range: { key: k } }, queue],
    }),
  );
  const read = r.responses[1];
  const kvs = read && 'range' in read ? read.range.kvs : [];
  let createRevision: number;
  if (r.succeeded) createRevision = r.header.revision;
  else {
    const existing = r.responses[0];
    const kv = existing && 'range' in existing ? existing.range.kvs[0] : undefined;
    if (!kv) throw new Error(`queue key ${key} vanished while enqueuing`);
    createRevision = kv.createRevision;
  }
  return { createRevision, header: r.header, first: !kvs.some((kv) => kv.createRevision < createRevision) };
}

/**
 * The contender just ahead of `createRevision` (the newest key created before it), if any, whether our own key
 * (`createRevision`) is still queued, and the read revision.
 */
export async function predecessor(client: KvClient, prefix: string, createRevision: number): Promise<{ kv?: KeyValue; own: boolean; revision: number }> {
  const k = bytes(prefix);
  // The whole (small) queue is read and ordered here rather than with sort/limit/maxCreateRevision options, so that
  // every backend's plain range is enough.
  const r = await retryTransient(() => client.range({ key: k, rangeEnd: prefixEnd(k) }));
  let best: KeyValue | undefined;
  for (const kv of r.kvs) {
    if (kv.createRevision < createRevision && (!best || kv.createRevision > best.createRevision)) best = kv;
  }
  return { kv: best, own: r.kvs.some((kv) => kv.createRevision === createRevision), revision: r.header.revision };
}

/** The head of the queue (lowest create revision) and the read revision. */
export function head(kvs: Iterable<KeyValue>): KeyValue | undefined {
  let best: KeyValue | undefined;
  for (const kv of kvs) if (!best || kv.createRevision < best.createRevision) best = kv;
  return best;
}

/** Resolves when `key` is deleted after `revision` (or the watch cannot tell any more: the caller re-checks). */
export function waitDeleted(client: KvClient, key: Buffer, revision: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal));
      return;
    }
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      void watch.cancel().catch(() => undefined);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(abortReason(signal));
    const watch = client.watch(
      { key, startRevision: revision + 1, filters: ['noput'] },
      {
        onEvents: (batch) => {
          if (batch.events.some((e) => e.type === 'delete')) finish();
        },
        onCompacted: () => finish(),
        onError: () => void sleep(100).then(() => finish()),
      },
    );
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Waits until no key older than `createRevision` is left under `prefix`; re-checks after every wake-up. Returns the
 * revision of the read that found us at the head. Throws if our own key is gone (its lease expired).
 */
export async function waitForTurn(client: KvClient, prefix: string, createRevision: number, signal: AbortSignal): Promise<number> {
  for (;;) {
    if (signal.aborted) throw abortReason(signal);
    const { kv, own, revision } = await predecessor(client, prefix, createRevision);
    if (!own) throw new CoordinationError('session-lost', `our queue key under ${prefix} is gone`);
    if (!kv) return revision;
    await waitDeleted(client, kv.key, revision, signal);
  }
}
