import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import type { KeyValue, KvClient } from '@nestcd/client';
import { Observable, distinctUntilChanged, map } from 'rxjs';
import { CoordinationCore } from './core';
import { CoordinationError, abortReason } from './errors';
import { bytes, leaseHex, parseJson, prefixEnd, segment } from './keys';
import { watchPrefix } from './prefix-watch';
import { enqueue, head, waitForTurn } from './queue';
import { Session } from './session';
import { anySignal, sleep } from './util';

/** Who leads an election. */
export interface LeaderInfo {
  election: string;
  key: string;
  /** the leader key's create revision: changes with every new leader, only grows. */
  fencingToken: number;
  /** the leader's value (JSON-decoded when it is JSON). */
  value: unknown;
  /** the revision the value was last proclaimed at. */
  modRevision: number;
}

export interface CampaignOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Leadership won in a campaign. Valid while `signal` has not fired. */
export interface Leadership {
  readonly election: string;
  readonly key: string;
  readonly fencingToken: number;
  /** fires at once when leadership is lost (session lost, key deleted) or resigned. */
  readonly signal: AbortSignal;
  readonly isLeader: boolean;
  /** publishes a new value, only if still leader (throws CoordinationError('not-owner') otherwise). */
  proclaim(value: unknown): Promise<void>;
  /** steps down; idempotent. */
  resign(): Promise<void>;
}

const encode = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v ?? null), 'utf8'));

let sequence = 0;

class Term implements Leadership {
  private readonly controller = new AbortController();
  private resigning?: Promise<void>;

  constructor(
    private readonly client: KvClient,
    readonly election: string,
    readonly key: string,
    readonly fencingToken: number,
    private readonly leaseId: bigint,
    session: Session,
    readRevision: number,
    private readonly onDone: (t: Term) => void,
  ) {
    const onLost = () => this.lose(abortReason(session.lost, 'session-lost'));
    if (session.lost.aborted) onLost();
    else session.lost.addEventListener('abort', onLost, { once: true });
    this.controller.signal.addEventListener('abort', () => session.lost.removeEventListener('abort', onLost), { once: true });
    const w = client.watch(
      { key: bytes(key), startRevision: readRevision + 1, filters: ['noput'] },
      { onEvents: (b) => b.events.some((e) => e.type === 'delete') && this.lose(new CoordinationError('not-owner', `election ${election}: leader key deleted`)) },
    );
    this.controller.signal.addEventListener('abort', () => void w.cancel().catch(() => undefined), { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get isLeader(): boolean {
    return !this.controller.signal.aborted;
  }

  lose(reason: CoordinationError): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(reason);
    this.onDone(this);
  }

  async proclaim(value: unknown): Promise<void> {
    if (!this.isLeader) throw abortReason(this.signal, 'not-owner');
    const k = bytes(this.key);
    const r = await this.client.txn({
      compare: [{ key: k, target: 'create', result: 'equal', value: this.fencingToken }],
      success: [{ put: { key: k, value: encode(value), lease: this.leaseId } }],
      failure: [],
    });
    if (!r.succeeded) {
      const err = new CoordinationError('not-owner', `election ${this.election}: no longer leader`);
      this.lose(err);
      throw err;
    }
  }

  resign(): Promise<void> {
    this.resigning ??= (async () => {
      this.lose(new CoordinationError('closed', `election ${this.election}: resigned`));
      const k = bytes(this.key);
      for (let attempt = 0; attempt < 6; attempt++) {
        try {
          await this.client.txn({ compare: [{ key: k, target: 'create', result: 'equal', value: this.fencingToken }], success: [{ deleteRange: { key: k } }], failure: [] });
          return;
        } catch {
          await sleep(100 * 2 ** attempt);
        }
      }
    })();
    return this.resigning;
  }
}

/**
 * Leader election on the same ordered-key queue as the fair lock (etcd's concurrency.Election): the oldest
 * candidate key under <namespace>election/<name>/ leads; proclaim and resign act only while its create revision
 * is unchanged; observe follows the head of the queue.
 */
@Injectable()
export class ElectionService implements BeforeApplicationShutdown {
  private readonly terms = new Set<Term>();
  private readonly logger = new Logger('CoordinationElection');

  constructor(private readonly core: CoordinationCore) {}

  /** Waits until this process leads `election`, then returns the leadership. */
  async campaign(election: string, value: unknown = this.core.instanceId, options: CampaignOptions = {}): Promise<Leadership> {
    const timeout = options.timeoutMs !== undefined ? AbortSignal.timeout(options.timeoutMs) : undefined;
    const session = await this.core.liveSession(options.signal);
    const signal = anySignal(options.signal, timeout, session.lost);
    const client = this.core.client;
    const prefix = this.core.keys.prefix('election', segment(election));
    const key = `${prefix}${leaseHex(session.leaseId)}_${process.pid.toString(36)}_${(sequence++).toString(36)}`;
    const k = bytes(key);
    const { createRevision, header, first } = await enqueue(client, prefix, key, encode(value), session.leaseId);
    try {
      const readRevision = first ? header.revision : await waitForTurn(client, prefix, createRevision, signal);
      if (signal.aborted) throw abortReason(signal);
      const term = new Term(client, election, key, createRevision, session.leaseId, session, readRevision, (t) => this.terms.delete(t));
      if (term.isLeader) this.terms.add(term);
      return term;
    } catch (err) {
      await client
        .txn({ compare: [{ key: k, target: 'create', result: 'equal', value: createRevision }], success: [{ deleteRange: { key: k } }], failure: [] })
        .catch(() => undefined);
      if (timeout?.aborted && !options.signal?.aborted) throw new CoordinationError('timeout', `election ${election}: not elected within ${options.timeoutMs} ms`);
      if (signal.aborted) throw abortReason(signal);
      throw err;
    }
  }

  /** The current leader, if any. */
  async leader(election: string): Promise<LeaderInfo | undefined> {
    const prefix = this.core.keys.prefix('election', segment(election));
    const k = bytes(prefix);
    const r = await this.core.client.range({ key: k, rangeEnd: prefixEnd(k) });
    const h = head(r.kvs);
    return h && this.info(election, h);
  }

  /** The leader as it changes (undefined while there is none); each change once. */
  observe(election: string): Observable<LeaderInfo | undefined> {
    const prefix = this.core.keys.prefix('election', segment(election));
    return watchPrefix(this.core.client, prefix, this.logger, this.core.closed).pipe(
      map((s) => {
        const h = head(s.kvs.values());
        return h && this.info(election, h);
      }),
      distinctUntilChanged((a, b) => a?.fencingToken === b?.fencingToken && a?.modRevision === b?.modRevision),
    );
  }

  /** Whether this process currently leads `election` through a campaign it won here. */
  isLeader(election: string): boolean {
    for (const t of this.terms) if (t.election === election && t.isLeader) return true;
    return false;
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.core.beginShutdown();
    await Promise.all([...this.terms].map((t) => t.resign()));
  }

  private info(election: string, kv: KeyValue): LeaderInfo {
    return { election, key: kv.key.toString('utf8'), fencingToken: kv.createRevision, value: parseJson(kv.value), modRevision: kv.modRevision };
  }
}
