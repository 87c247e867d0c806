import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import type { KvClient, RequestOp, TxnResponse, Watch } from '@nestcd/client';
import { CoordinationCore } from './core';
import { CoordinationError, abortReason } from './errors';
import { bytes, leaseHex, segment } from './keys';
import { enqueue, waitDeleted, waitForTurn } from './queue';
import { Session } from './session';
import { anySignal, sleep } from './util';

export interface AcquireOptions {
  /** give up (reject with reason 'timeout') after this long. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * 'fair' (default): waiters are served in arrival order, each watching only its predecessor.
   * 'cas': one key, compare-and-swap; cheaper, not fair (any waiter may win after a release).
   */
  kind?: 'fair' | 'cas';
}

/** A held lock. Everything on it stays valid only while `signal` has not fired. */
export interface LockHandle {
  readonly name: string;
  /** the store key that holds the lock. */
  readonly key: string;
  /**
   * The holder's key create revision: grows with every grant of this lock. Pass it to the resource you protect
   * and let it refuse smaller tokens: a holder paused longer than the TTL is then fenced off.
   */
  readonly fencingToken: number;
  /** fires when the lock is lost (session lost, key deleted) or released. */
  readonly signal: AbortSignal;
  readonly held: boolean;
  /** commits `ops` only if this handle still owns the lock; throws CoordinationError('not-owner') otherwise. */
  ifOwner(ops: RequestOp[]): Promise<TxnResponse>;
  /** gives the lock up; idempotent, retried on transient errors. */
  release(): Promise<void>;
}

let sequence = 0;

class HeldLock implements LockHandle {
  private readonly controller = new AbortController();
  private releasing?: Promise<void>;
  private ownWatch?: Watch;
  private readonly logger = new Logger('CoordinationLock');

  constructor(
    private readonly client: KvClient,
    readonly name: string,
    readonly key: string,
    readonly fencingToken: number,
    session: Session,
    readRevision: number,
    private readonly onDone: (h: HeldLock) => void,
  ) {
    const onLost = () => this.lose(abortReason(session.lost, 'session-lost'));
    if (session.lost.aborted) onLost();
    else session.lost.addEventListener('abort', onLost, { once: true });
    this.controller.signal.addEventListener('abort', () => session.lost.removeEventListener('abort', onLost), { once: true });
    // a deleted key (lease expired, someone removed it) means the lock is gone: say so at once
    if (!this.controller.signal.aborted) {
      this.ownWatch = client.watch(
        { key: bytes(key), startRevision: readRevision + 1, filters: ['noput'] },
        {
          onEvents: (b) => {
            if (b.events.some((e) => e.type === 'delete')) this.lose(new CoordinationError('not-owner', `lock ${name}: its key was deleted`));
          },
        },
      );
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get held(): boolean {
    return !this.controller.signal.aborted;
  }

  private lose(reason: CoordinationError): void {
    if (this.controller.signal.aborted) return;
    void this.ownWatch?.cancel().catch(() => undefined);
    this.controller.abort(reason);
    this.onDone(this);
  }

  async ifOwner(ops: RequestOp[]): Promise<TxnResponse> {
    if (!this.held) throw abortReason(this.signal, 'not-owner');
    const r = await this.client.txn({
      compare: [{ key: bytes(this.key), target: 'create', result: 'equal', value: this.fencingToken }],
      success: ops,
      failure: [],
    });
    if (!r.succeeded) {
      const err = new CoordinationError('not-owner', `lock ${this.name} is no longer held by this handle`);
      this.lose(err);
      throw err;
    }
    return r;
  }

  release(): Promise<void> {
    this.releasing ??= (async () => {
      this.lose(new CoordinationError('closed', `lock ${this.name} released`));
      const k = bytes(this.key);
      for (let attempt = 0; attempt < 6; attempt++) {
        try {
          // only our own incarnation of the key: never delete a successor's
          await this.client.txn({
            compare: [{ key: k, target: 'create', result: 'equal', value: this.fencingToken }],
            success: [{ deleteRange: { key: k } }],
            failure: [],
          });
          return;
        } catch (err) {
          this.logger.warn(`releasing ${this.name} failed (attempt ${attempt + 1}): ${(err as Error).message}`);
          await sleep(100 * 2 ** attempt);
        }
      }
      this.logger.error(`could not release ${this.name}; its key goes away with the session lease`);
    })();
    return this.releasing;
  }
}

/**
 * Distributed locks. The fair lock follows etcd's concurrency.Mutex: each contender writes
 * <namespace>locks/<name>/<lease>_<n> under its session lease; the oldest key holds the lock; a waiter watches only
 * the key just before its own and looks again when it goes (an older one may still be there).
 */
@Injectable()
export class LockService implements BeforeApplicationShutdown {
  private readonly held = new Set<HeldLock>();

  constructor(private readonly core: CoordinationCore) {}

  async acquire(name: string, options: AcquireOptions = {}): Promise<LockHandle> {
    const timeout = options.timeoutMs !== undefined ? AbortSignal.timeout(options.timeoutMs) : undefined;
    const session = await this.core.liveSession(options.signal);
    const signal = anySignal(options.signal, timeout, session.lost);
    const why = () => (timeout?.aborted && !options.signal?.aborted ? new CoordinationError('timeout', `lock ${name}: not acquired within ${options.timeoutMs} ms`) : abortReason(signal));
    try {
      return options.kind === 'cas' ? await this.acquireCas(name, session, signal, false) : await this.acquireFair(name, session, signal, false);
    } catch (err) {
      if (signal.aborted) throw why();
      throw err;
    }
  }

  /** The lock if it is free right now, otherwise undefined (never waits). */
  async tryAcquire(name: string, options: Pick<AcquireOptions, 'kind'> = {}): Promise<LockHandle | undefined> {
    const session = await this.core.liveSession();
    try {
      return options.kind === 'cas' ? await this.acquireCas(name, session, session.lost, true) : await this.acquireFair(name, session, session.lost, true);
    } catch (err) {
      if (err instanceof CoordinationError && err.reason === 'busy') return undefined;
      throw err;
    }
  }

  /**
   * Runs `fn` holding the lock and releases it afterwards, also when `fn` throws. `fn` gets the handle: watch its
   * signal to stop work when the lock is lost, and pass its fencingToken on.
   */
  async withLock<T>(name: string, fn: (lock: LockHandle) => Promise<T> | T, options: AcquireOptions = {}): Promise<T> {
    const lock = await this.acquire(name, options);
    try {
      return await fn(lock);
    } finally {
      await lock.release();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.core.beginShutdown();
    await Promise.all([...this.held].map((h) => h.release()));
  }

  private track(h: HeldLock): HeldLock {
    if (h.held) this.held.add(h);
    return h;
  }

  private async acquireFair(name: string, session: Session, signal: AbortSignal, tryOnly: boolean): Promise<HeldLock> {
    const client = this.core.client;
    const prefix = this.core.keys.prefix('locks', segment(name));
    const key = `${prefix}${leaseHex(session.leaseId)}_${process.pid.toString(36)}_${(sequence++).toString(36)}`;
    const { createRevision, header, first } = await enqueue(client, prefix, key, Buffer.alloc(0), session.leaseId);
    const k = bytes(key);
    const removeOwn = () =>
      client
        .txn({ compare: [{ key: k, target: 'create', result: 'equal', value: createRevision }], success: [{ deleteRange: { key: k } }], failure: [] })
        .catch(() => undefined);
    try {
      let readRevision = header.revision;
      if (!first) {
        if (tryOnly) throw new CoordinationError('busy', `lock ${name} is held`);
        readRevision = await waitForTurn(client, prefix, createRevision, signal);
      }
      if (signal.aborted) throw abortReason(signal);
      return this.track(new HeldLock(client, name, key, createRevision, session, readRevision, (h) => this.held.delete(h)));
    } catch (err) {
      await removeOwn();
      throw err;
    }
  }

  private async acquireCas(name: string, session: Session, signal: AbortSignal, tryOnly: boolean): Promise<HeldLock> {
    const client = this.core.client;
    const key = this.core.keys.key('caslocks', segment(name));
    const k = bytes(key);
    for (;;) {
      if (signal.aborted) throw abortReason(signal);
      const r = await client.txn({
        compare: [{ key: k, target: 'create', result: 'equal', value: 0 }],
        success: [{ put: { key: k, value: bytes(this.core.instanceId), lease: session.leaseId } }],
        failure: [{ range: { key: k } }],
      });
      if (r.succeeded) return this.track(new HeldLock(client, name, key, r.header.revision, session, r.header.revision, (h) => this.held.delete(h)));
      if (tryOnly) throw new CoordinationError('busy', `lock ${name} is held`);
      await waitDeleted(client, k, r.header.revision, signal);
    }
  }
}
