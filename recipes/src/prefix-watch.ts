import { Logger } from '@nestjs/common';
import type { KeyValue, KvClient, Watch } from '@nestcd/client';
import { Observable } from 'rxjs';
import { bytes, prefixEnd } from './keys';
import { sleep } from './util';

export interface KeyChange {
  key: string;
  /** undefined: the key was deleted. */
  kv?: KeyValue;
  previous?: KeyValue;
  revision: number;
}

export interface PrefixState {
  /** every key under the prefix at `revision`, by key string. */
  kvs: ReadonlyMap<string, KeyValue>;
  revision: number;
  /** what changed since the previous emission, in revision order (on the first emission: every key). */
  changes: KeyChange[];
  /** true when this emission comes from a (re-)read rather than from watch events. */
  resync: boolean;
}

/**
 * A prefix kept current: range it at revision R, then watch from R+1. Events are applied in revision order and
 * never doubled. When the watch's start revision is compacted away (or the watch fails for good) the prefix is
 * read again and the difference to what we had is emitted as changes, so nothing current is missed.
 */
export function watchPrefix(client: KvClient, prefix: string, logger = new Logger('CoordinationWatch'), until?: AbortSignal): Observable<PrefixState> {
  return new Observable<PrefixState>((subscriber) => {
    if (until?.aborted) {
      subscriber.complete();
      return;
    }
    const key = bytes(prefix);
    const rangeEnd = prefixEnd(key);
    let state = new Map<string, KeyValue>();
    let watch: Watch | undefined;
    let stopped = false;
    let first = true;

    const resync = async (): Promise<void> => {
      for (let attempt = 0; !stopped; attempt++) {
        try {
          const r = await client.range({ key, rangeEnd });
          if (stopped) return;
          const next = new Map<string, KeyValue>(r.kvs.map((kv) => [kv.key.toString('utf8'), kv]));
          const changes: KeyChange[] = [];
          for (const [k, kv] of next) {
            const before = state.get(k);
            if (first || !before || before.modRevision !== kv.modRevision) changes.push({ key: k, kv, previous: before, revision: kv.modRevision });
          }
          for (const [k, before] of state) {
            if (!next.has(k)) changes.push({ key: k, previous: before, revision: r.header.revision });
          }
          changes.sort((a, b) => a.revision - b.revision);
          state = next;
          first = false;
          subscriber.next({ kvs: state, revision: r.header.revision, changes, resync: true });
          startWatch(r.header.revision + 1);
          return;
        } catch (err) {
          if (stopped) return;
          logger.warn(`reading ${prefix} failed, retrying: ${(err as Error).message}`);
          await sleep(Math.min(2000, 100 * 2 ** attempt));
        }
      }
    };

    const restart = (why: string) => {
      if (stopped) return;
      logger.log(`re-reading ${prefix}: ${why}`);
      const w = watch;
      watch = undefined;
      void w?.cancel().catch(() => undefined);
      void resync();
    };

    const startWatch = (startRevision: number) => {
      const w = client.watch(
        { key, rangeEnd, startRevision, prevKv: true },
        {
          onEvents: (batch) => {
            if (stopped || watch !== w || batch.events.length === 0) return;
            const changes: KeyChange[] = [];
            let revision = batch.header.revision;
            for (const ev of batch.events) {
              const k = ev.kv.key.toString('utf8');
              const before = state.get(k);
              if (ev.type === 'put') {
                state.set(k, ev.kv);
                changes.push({ key: k, kv: ev.kv, previous: before, revision: ev.kv.modRevision });
              } else {
                state.delete(k);
                changes.push({ key: k, previous: before, revision: ev.kv.modRevision });
              }
              revision = Math.max(revision, ev.kv.modRevision);
            }
            subscriber.next({ kvs: state, revision, changes, resync: false });
          },
          onCompacted: (rev) => {
            if (watch === w) restart(`watch start revision compacted (compact revision ${rev})`);
          },
          onError: (err) => {
            if (watch === w) setTimeout(() => watch === w && restart(`watch ended: ${err.message}`), 200).unref();
          },
        },
      );
      watch = w;
    };

    const onClosed = () => {
      stop();
      subscriber.complete();
    };
    until?.addEventListener('abort', onClosed, { once: true });
    const stop = () => {
      until?.removeEventListener('abort', onClosed);
      stopped = true;
      void watch?.cancel().catch(() => undefined);
      watch = undefined;
    };
    void resync();
    return stop;
  });
}
