// Watches on Redis: the event log (a stream, IDs "<revision>-<n>") is the source of truth; a pub/sub message per
// write only wakes the watchers up. Each watch reads the log from the revision after the last one it delivered,
// so neither a lost pub/sub message nor a reconnect loses or repeats events.
import type Redis from 'ioredis';
import { ClientError, ClientErrorCode } from '../errors';
import type { KeyValue, ResponseHeader, Watch, WatchEvent, WatchHandlers, WatchRequest } from '../types';

const PAGE = 1000;

type Entry = [id: Buffer, fields: Buffer[]];

function inRange(key: Buffer, req: WatchRequest): boolean {
  const end = req.rangeEnd;
  if (!end || end.length === 0) return key.equals(req.key);
  if (end.length === 1 && end[0] === 0) return Buffer.compare(key, req.key) >= 0;
  return Buffer.compare(key, req.key) >= 0 && Buffer.compare(key, end) < 0;
}

/** One log entry as an event (with its revision), from the stream's field list. */
export function decodeEntry(fields: Buffer[]): WatchEvent {
  const f = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i].toString(), fields[i + 1]);
  const n = (name: string) => Number(f.get(name)?.toString() || '0');
  const kv: KeyValue = {
    key: f.get('k') ?? Buffer.alloc(0),
    value: f.get('v') ?? Buffer.alloc(0),
    createRevision: n('c'),
    modRevision: n('m'),
    version: n('ver'),
    lease: BigInt(f.get('l')?.toString() || '0'),
  };
  const ev: WatchEvent = { type: f.get('t')?.toString() === 'delete' ? 'delete' : 'put', kv };
  if (f.has('pc')) {
    ev.prevKv = { key: kv.key, value: f.get('pv') ?? Buffer.alloc(0), createRevision: n('pc'), modRevision: n('pm'), version: n('pver'), lease: BigInt(f.get('pl')?.toString() || '0') };
  }
  return ev;
}

class RedisWatch implements Watch {
  nextRevision = 0;
  lastRevision = 0;
  ready: Promise<void>;
  done = false;
  pulling = false;
  again = false;
  disconnected = false;

  constructor(
    readonly req: WatchRequest,
    readonly handlers: WatchHandlers,
    private readonly hub: RedisWatchHub,
    start: () => Promise<void>,
  ) {
    this.ready = start();
    this.ready.catch(() => undefined);
  }

  async cancel(): Promise<void> {
    this.hub.remove(this);
  }
}

export class RedisWatchHub {
  private subscriber: Redis | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly watches = new Set<RedisWatch>();
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly head: () => Promise<[number, number]>,
  ) {}

  private get channel(): string {
    return `${this.prefix}events`;
  }

  private get log(): string {
    return `${this.prefix}log`;
  }

  private subscribe(): Promise<void> {
    if (this.subscribed) return this.subscribed;
    const sub = this.redis.duplicate();
    this.subscriber = sub;
    sub.on('error', () => undefined);
    sub.on('message', () => {
      for (const w of this.watches) void this.pull(w);
    });
    sub.on('close', () => {
      if (this.closed) return;
      const err = new ClientError(ClientErrorCode.UNAVAILABLE, 'redis: connection lost');
      for (const w of this.watches) this.markDisconnected(w, err);
    });
    // ioredis re-subscribes on reconnect; catch up on whatever was announced meanwhile
    sub.on('ready', () => {
      for (const w of this.watches) void this.pull(w);
    });
    this.subscribed = sub.subscribe(this.channel).then(() => undefined);
    return this.subscribed;
  }

  private markDisconnected(w: RedisWatch, err: Error): void {
    if (w.disconnected || w.done) return;
    w.disconnected = true;
    w.handlers.onDisconnected?.(err);
  }

  watch(req: WatchRequest, handlers: WatchHandlers): Watch {
    const w: RedisWatch = new RedisWatch(req, handlers, this, async () => {
      try {
        // subscribe before reading the head, so no write between the two goes unnoticed
        await this.subscribe();
        if (req.startRevision && req.startRevision > 0) {
          w.nextRevision = req.startRevision;
        } else {
          const [current] = await this.head();
          w.nextRevision = current + 1;
        }
      } catch (err) {
        if (!w.done) {
          w.done = true;
          handlers.onError?.(err instanceof Error ? err : new Error(String(err)));
        }
        throw err;
      }
      if (w.done || this.closed) return; // cancelled while starting
      w.lastRevision = w.nextRevision - 1;
      this.watches.add(w);
      await this.pull(w);
    });
    return w;
  }

  remove(w: RedisWatch): void {
    w.done = true;
    this.watches.delete(w);
  }

  /** Delivers everything in the log from w.nextRevision on, page by page; one pull per watch at a time. */
  private async pull(w: RedisWatch): Promise<void> {
    if (w.done) return;
    if (w.pulling) {
      w.again = true;
      return;
    }
    w.pulling = true;
    try {
      for (;;) {
        w.again = false;
        const res = await this.redis.multi().get(`${this.prefix}compact`).xrangeBuffer(this.log, String(w.nextRevision), '+', 'COUNT', PAGE).exec();
        if (w.done) return;
        if (!res) throw new Error('redis: transaction aborted');
        const [compactErr, compactRaw] = res[0];
        const [rangeErr, rangeRaw] = res[1];
        if (compactErr || rangeErr) throw compactErr ?? rangeErr;
        if (w.disconnected) {
          w.disconnected = false;
          w.handlers.onReconnected?.();
        }
        const compact = Number(compactRaw ?? 0);
        if (compact > 0 && w.nextRevision < compact) {
          this.remove(w);
          if (w.handlers.onCompacted) w.handlers.onCompacted(compact);
          else w.handlers.onError?.(new ClientError(ClientErrorCode.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'));
          return;
        }
        const entries = (rangeRaw ?? []) as Entry[];
        this.deliver(w, entries);
        if (entries.length < PAGE && !w.again) return;
      }
    } catch (err) {
      if (w.done || this.closed) return;
      this.markDisconnected(w, err instanceof Error ? err : new Error(String(err)));
      setTimeout(() => void this.pull(w), 200).unref();
    } finally {
      w.pulling = false;
    }
  }

  private deliver(w: RedisWatch, entries: Entry[]): void {
    // group by revision: one batch per revision, only whole revisions (a page may end inside one: re-read it)
    let i = 0;
    const full = entries.length === PAGE;
    while (i < entries.length) {
      const rev = Number(entries[i][0].toString().split('-')[0]);
      let j = i;
      while (j < entries.length && Number(entries[j][0].toString().split('-')[0]) === rev) j++;
      if (j === entries.length && full && i > 0) return; // possibly cut by the page: next pull starts at this revision
      const events = entries
        .slice(i, j)
        .map(([, fields]) => decodeEntry(fields))
        .filter((e) => inRange(e.kv.key, w.req))
        .filter((e) => !(e.type === 'put' && w.req.filters?.includes('noput')) && !(e.type === 'delete' && w.req.filters?.includes('nodelete')))
        .map((e) => (w.req.prevKv ? e : { type: e.type, kv: e.kv }));
      w.nextRevision = rev + 1;
      if (events.length > 0) {
        w.lastRevision = rev;
        const header: ResponseHeader = { clusterId: 0n, memberId: 0n, revision: rev, raftTerm: 0 };
        w.handlers.onEvents({ header, events });
        if (w.done) return;
      }
      i = j;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const err = new ClientError(ClientErrorCode.CANCELLED, 'client closed');
    for (const w of [...this.watches]) {
      this.remove(w);
      w.handlers.onError?.(err);
    }
    this.subscriber?.disconnect();
  }
}
