// Helpers shared by the mvcc specs (not exported from the package index).
import { EtcdError } from '@nestcd/errors';
import { MvccStore, type MvccOptions } from './store';
import type { Event } from './types';

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');
export const s = (x: Buffer): string => x.toString('latin1');

export function manualScheduler() {
  const q: Array<() => void> = [];
  return {
    schedule: (fn: () => void) => void q.push(fn),
    get pending(): number {
      return q.length;
    },
    /** runs queued passes (and the ones they queue) until idle or `max` ran. */
    drain(max = 1_000_000): number {
      let n = 0;
      while (q.length > 0 && n < max) {
        q.shift()!();
        n++;
      }
      return n;
    },
  };
}

export function fakeClock(start = 1_000_000) {
  let now = start;
  return {
    clock: () => now,
    advance: (ms: number) => void (now += ms),
    set: (ms: number) => void (now = ms),
  };
}

export function newStore(opts: MvccOptions = {}) {
  const sched = manualScheduler();
  const clk = fakeClock();
  const store = new MvccStore({ clock: clk.clock, schedule: sched.schedule, ...opts });
  return { store, sched, clk };
}

export function expectEtcdError(fn: () => unknown, expected: EtcdError): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(EtcdError);
  expect((thrown as EtcdError).message).toBe(expected.message);
  expect((thrown as EtcdError).code).toBe(expected.code);
}

export interface SinkCall {
  events: Event[];
  revision: number;
}

/** a recording sink; `accept` decides the return value per call. */
export function recorder(accept: (callIndex: number) => boolean = () => true) {
  const calls: SinkCall[] = [];
  const compacted: number[] = [];
  return {
    calls,
    compacted,
    sink: (events: Event[], revision: number) => {
      calls.push({ events, revision });
      return accept(calls.length - 1);
    },
    onCompacted: (rev: number) => void compacted.push(rev),
    /** flattened events as compact strings: "P key@mod v=value" / "D key@mod". */
    flat(withPrev = false): string[] {
      return calls.flatMap((c) => c.events.map((e) => fmtEvent(e, withPrev)));
    },
  };
}

export function fmtEvent(e: Event, withPrev = false): string {
  const base =
    e.type === 0
      ? `P ${s(e.kv.key)}@${e.kv.modRevision} c=${e.kv.createRevision} v=${e.kv.version} ${s(e.kv.value)} l=${e.kv.lease}`
      : `D ${s(e.kv.key)}@${e.kv.modRevision}`;
  if (!withPrev) return base;
  return e.prevKv ? `${base} prev=${s(e.prevKv.value)}@${e.prevKv.modRevision}` : `${base} prev=-`;
}
