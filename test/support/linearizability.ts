/**
 * Linearizability checking for client-observed histories (issue 5).
 *
 * - `History` records operations as clients issue them: `invoke` at call time, then exactly one of
 *   `ok(op, output)`, `fail(op)` (definitely not applied) or `info(op)` (outcome unknown: the op may take
 *   effect at any time after its invocation, or never; its return time is +Infinity, as in Knossos/Porcupine).
 * - `kvModel` is an etcd-style register per key: get / put / cas (compare value, null = absent) / delete.
 * - `checkLinearizable` partitions the history per key and runs Wing & Gong's search with Lowe's
 *   memoization (cache of (linearized-set bitset, state)), as Porcupine's `checkSingle` does.
 *   Unknown-outcome ops have no return event (they never block the search and need not be linearized);
 *   to keep many of them tractable the cache is a dominance check (same completed ops and state, subset of
 *   the unknown ops used), completed ops are tried before unknown ones, unknown ops that would be no-ops or
 *   whose effect the next unknown op erases are skipped, and `Model.prepare` may group interchangeable
 *   unknown ops (kvModel: writes of values nobody observes) so they are only tried in invocation order.
 *   On a violation it binary-searches the minimal failing prefix of that key's history and explains it.
 */
import { performance } from 'node:perf_hooks';

// ---------------------------------------------------------------------------------------------------------
// History recording
// ---------------------------------------------------------------------------------------------------------

export type OpStatus = 'ok' | 'fail' | 'info' | 'pending';
export type ClientId = string | number;

/** One recorded operation. Times come from the history's monotonic clock (ms by default). */
export interface Operation<I = unknown, O = unknown> {
  id: number;
  clientId: ClientId;
  input: I;
  /** Only meaningful when `status === 'ok'`. */
  output?: O;
  status: OpStatus;
  call: number;
  /** Return time; +Infinity for `info` and `pending` (never-returned) operations. */
  ret: number;
}

export interface OpHandle {
  readonly id: number;
}

export interface HistoryOptions {
  /**
   * Monotonic clock. A `bigint` clock is taken to be nanoseconds (like `process.hrtime.bigint`) and is
   * converted to milliseconds since the history was created; a `number` clock is used as is.
   * Default: `process.hrtime.bigint`.
   */
  clock?: () => number | bigint;
}

export class History<I = unknown, O = unknown> {
  private readonly ops: Operation<I, O>[] = [];
  private readonly clock: () => number;

  constructor(options: HistoryOptions = {}) {
    const raw = options.clock ?? (() => process.hrtime.bigint());
    let origin: bigint | undefined;
    this.clock = () => {
      const t = raw();
      if (typeof t === 'bigint') {
        if (origin === undefined) origin = t;
        return Number(t - origin) / 1e6;
      }
      return t;
    };
  }

  /** Record an invocation; call this immediately before issuing the request. */
  invoke(clientId: ClientId, input: I): OpHandle {
    const op: Operation<I, O> = {
      id: this.ops.length,
      clientId,
      input,
      status: 'pending',
      call: this.clock(),
      ret: Infinity,
    };
    this.ops.push(op);
    return { id: op.id };
  }

  /** The operation completed with `output`. */
  ok(handle: OpHandle, output: O): void {
    const op = this.complete(handle, 'ok');
    op.output = output;
  }

  /** The operation definitely did not take effect (e.g. rejected before being proposed). */
  fail(handle: OpHandle): void {
    this.complete(handle, 'fail');
  }

  /** The outcome is unknown (timeout, connection lost): it may take effect at any time after invocation. */
  info(handle: OpHandle): void {
    this.complete(handle, 'info');
  }

  /**
   * Convenience wrapper: invoke, run `fn`, record ok with its result; on an exception record
   * `classify(err)` ('fail' or 'info', default 'info') and rethrow.
   */
  async run(
    clientId: ClientId,
    input: I,
    fn: () => Promise<O>,
    classify: (err: unknown) => 'fail' | 'info' = () => 'info',
  ): Promise<O> {
    const h = this.invoke(clientId, input);
    try {
      const out = await fn();
      this.ok(h, out);
      return out;
    } catch (err) {
      if (classify(err) === 'fail') this.fail(h);
      else this.info(h);
      throw err;
    }
  }

  /** Snapshot of all operations (pending ones are reported as such and checked like `info`). */
  operations(): Operation<I, O>[] {
    return this.ops.map((o) => ({ ...o }));
  }

  get size(): number {
    return this.ops.length;
  }

  private complete(handle: OpHandle, status: 'ok' | 'fail' | 'info'): Operation<I, O> {
    const op = this.ops[handle.id];
    if (!op) throw new Error(`history: unknown operation ${handle.id}`);
    if (op.status !== 'pending') throw new Error(`history: operation ${handle.id} already completed (${op.status})`);
    op.status = status;
    op.ret = status === 'info' ? Infinity : Math.max(op.call, this.clock());
    return op;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------------------

/**
 * A deterministic sequential specification. `step` returns the next state, or `undefined` if the
 * operation with that output is impossible in `state`. When `outputKnown` is false (info/pending ops),
 * any output is acceptable: return the state after applying the operation.
 */
export interface Model<S, I, O> {
  /** Partition key (ops in different partitions are checked independently). Default: one partition. */
  partition?(input: I): string;
  init(): S;
  step(state: S, input: I, output: O | undefined, outputKnown: boolean): S | undefined;
  /** 32-bit hash consistent with `equal`. */
  hash(state: S): number;
  equal(a: S, b: S): boolean;
  /** True if the op never changes the state (such ops with unknown outcome are dropped). */
  readOnly?(input: I): boolean;
  describeOperation?(input: I, output: O | undefined, outputKnown: boolean): string;
  describeState?(state: S): string;
  /**
   * Optional, per partition: rewrite the ops into an equivalent form that is cheaper to check, and put
   * unknown-outcome ops into symmetry classes. Ops of one class must have identical effects on every state
   * (after the rewrite); the checker then only linearizes them in invocation order, which turns 2^k subsets
   * of k interchangeable timed-out writes into k + 1 choices. Must preserve linearizability exactly.
   */
  prepare?(ops: readonly PreparedOp<I, O>[]): PreparedOp<I, O>[];
}

export interface PreparedOp<I, O> {
  input: I;
  output: O | undefined;
  known: boolean;
  /** Symmetry class of an unknown-outcome op (ignored for known ops). */
  symmetry?: string;
}

export type KvInput =
  | { type: 'get'; key: string }
  | { type: 'put'; key: string; value: string }
  | { type: 'cas'; key: string; expected: string | null; value: string }
  | { type: 'delete'; key: string };

/**
 * Outputs: get -> the value (`null` if absent); put -> undefined; cas -> succeeded (boolean);
 * delete -> number of keys deleted (0 | 1), or undefined when not checked.
 */
export type KvOutput = string | null | boolean | number | undefined;

export const kv = {
  get: (key: string): KvInput => ({ type: 'get', key }),
  put: (key: string, value: string): KvInput => ({ type: 'put', key, value }),
  cas: (key: string, expected: string | null, value: string): KvInput => ({ type: 'cas', key, expected, value }),
  del: (key: string): KvInput => ({ type: 'delete', key }),
};

/** How a history client reaches the store: one call per kind of operation the kv model checks. */
export interface KvDriver {
  get(key: string): Promise<string | null>;
  put(key: string, value: string): Promise<void>;
  /** Puts `value` if the key's value is `expected` (`null`: the key is absent); resolves with whether it did. */
  cas(key: string, expected: string | null, value: string): Promise<boolean>;
}

/**
 * Runs one get, put or compare-and-swap through `driver` and records it in `history`: its output when it
 * succeeds; when it fails, a read as failed (it changed nothing) and a write as unknown (it may still have been
 * applied: timeout, leader lost). Resolves with whether the operation succeeded.
 */
export async function recordKvOp(history: History<KvInput, KvOutput>, client: ClientId, driver: KvDriver, op: KvInput): Promise<boolean> {
  const h = history.invoke(client, op);
  try {
    let out: KvOutput;
    if (op.type === 'get') out = await driver.get(op.key);
    else if (op.type === 'put') {
      await driver.put(op.key, op.value);
      out = undefined;
    }
    else if (op.type === 'cas') out = await driver.cas(op.key, op.expected, op.value);
    else throw new Error(`recordKvOp does not drive ${op.type}`);
    history.ok(h, out);
    return true;
  } catch {
    if (op.type === 'get') history.fail(h);
    else history.info(h);
    return false;
  }
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

const fmt = (v: unknown): string => (v === null ? 'null' : v === undefined ? '?' : JSON.stringify(v));

/** etcd-style register on each key; state is the key's value, `null` when absent. */
export const kvModel: Model<string | null, KvInput, KvOutput> = {
  partition: (input) => input.key,
  init: () => null,
  step(state, input, output, known) {
    switch (input.type) {
      case 'get':
        if (!known) return state;
        if (output !== null && typeof output !== 'string') throw new Error(`kvModel: get output must be string|null, got ${fmt(output)}`);
        return output === state ? state : undefined;
      case 'put':
        return input.value;
      case 'cas': {
        const succeeded = state === input.expected;
        if (known && typeof output !== 'boolean') throw new Error(`kvModel: cas output must be boolean, got ${fmt(output)}`);
        if (known && output !== succeeded) return undefined;
        return succeeded ? input.value : state;
      }
      case 'delete': {
        if (known && output !== undefined) {
          if (typeof output !== 'number') throw new Error(`kvModel: delete output must be a count, got ${fmt(output)}`);
          if (output !== (state === null ? 0 : 1)) return undefined;
        }
        return null;
      }
    }
  },
  hash: (s) => (s === null ? 0x5bd1e995 : hashString(s)),
  equal: (a, b) => a === b,
  readOnly: (input) => input.type === 'get',
  describeOperation(input, output, known) {
    const out = known ? (input.type === 'put' || (input.type === 'delete' && output === undefined) ? 'ok' : fmt(output)) : 'unknown';
    switch (input.type) {
      case 'get':
        return `get(${fmt(input.key)}) -> ${out}`;
      case 'put':
        return `put(${fmt(input.key)}, ${fmt(input.value)}) -> ${out}`;
      case 'cas':
        return `cas(${fmt(input.key)}, ${fmt(input.expected)} => ${fmt(input.value)}) -> ${out}`;
      case 'delete':
        return `delete(${fmt(input.key)}) -> ${out}`;
    }
  },
  describeState: (s) => fmt(s),
  /**
   * Values that no op ever compares against (not returned by a completed get, not a CAS expectation) are
   * indistinguishable, so they are all rewritten to one symbol. Timed-out writes of such values then share
   * a symmetry class. (Deletes compare only absent/present, which the rewrite preserves.)
   */
  prepare(ops) {
    const observed = new Set<string>();
    let collision = false;
    for (const o of ops) {
      const inp = o.input;
      if (inp.type === 'get' && o.known && typeof o.output === 'string') observed.add(o.output);
      if (inp.type === 'cas' && inp.expected !== null) observed.add(inp.expected);
      if ((inp.type === 'put' || inp.type === 'cas') && inp.value === UNOBSERVED) collision = true;
    }
    const abs = (v: string): string => (collision || observed.has(v) ? v : UNOBSERVED);
    return ops.map((o) => {
      const inp = o.input;
      let input: KvInput = inp;
      if (inp.type === 'put') input = { ...inp, value: abs(inp.value) };
      else if (inp.type === 'cas') input = { ...inp, value: abs(inp.value) };
      const symmetry =
        input.type === 'put'
          ? `put ${input.value}`
          : input.type === 'cas'
            ? `cas ${JSON.stringify(input.expected)} ${input.value}`
            : input.type;
      return { input, output: o.output, known: o.known, symmetry };
    });
  },
};

const UNOBSERVED = '\u0000<unobserved value>';

// ---------------------------------------------------------------------------------------------------------
// Checker
// ---------------------------------------------------------------------------------------------------------

export interface CheckOptions {
  /** Overall budget for the check (including the failure explanation). Default: no limit. */
  timeoutMs?: number;
}

export interface LinearizationStep<S> {
  opId: number;
  stateAfter: S;
}

export interface Violation<S, I, O> {
  ok: false;
  key: string;
  /** The op whose completion makes the key's history non-linearizable (last op of the minimal failing prefix). */
  failingOp: Operation<I, O>;
  /** Ops of the minimal failing prefix that matter most: `failingOp`, the ops concurrent with it, and the
   * recent tail of the partial linearization. Sorted by invocation time. */
  involved: Operation<I, O>[];
  /** Number of this key's ops in the minimal failing prefix (ops invoked before `failingOp` returned). */
  prefixLength: number;
  /** True if the prefix search completed; false if the time budget ran out during the explanation. */
  minimal: boolean;
  /** A linearization of the longest linearizable prefix (all of it before `failingOp` returned). */
  partialOrder: LinearizationStep<S>[];
  /** Human-readable report. */
  explanation: string;
}

export type CheckResult<S, I, O> = { ok: true } | Violation<S, I, O> | { ok: 'unknown'; reason: 'timeout'; key: string };

interface POp<I, O> {
  /** index into the partition's op array */
  idx: number;
  op: Operation<I, O>;
  call: number;
  ret: number; // Infinity = unknown outcome
  known: boolean;
  /** input/output after `model.prepare` */
  input: I;
  output: O | undefined;
  /** unknown-outcome op of the same symmetry class invoked just before this one (-1: none) */
  prevSym: number;
}

/** Build a partition's ops: `known` ops keep their return time, the others return at +Infinity. */
function buildPOps<S, I, O>(model: Model<S, I, O>, list: readonly { op: Operation<I, O>; known: boolean }[]): POp<I, O>[] {
  const base = list.map(({ op, known }) => ({ input: op.input, output: known ? op.output : undefined, known }));
  const prepared: PreparedOp<I, O>[] = model.prepare ? model.prepare(base) : base;
  const pops: POp<I, O>[] = list.map(({ op, known }, idx) => {
    if (known && !(op.ret >= op.call)) throw new Error(`history: op ${op.id} returns (${op.ret}) before its call (${op.call})`);
    const p = prepared[idx];
    return { idx, op, call: op.call, ret: known ? op.ret : Infinity, known, input: p.input, output: p.output, prevSym: -1 };
  });
  const lastOfClass = new Map<string, number>();
  const unknown = pops.filter((p) => !p.known && prepared[p.idx].symmetry !== undefined);
  unknown.sort((a, b) => a.call - b.call || a.idx - b.idx);
  for (const p of unknown) {
    const cls = prepared[p.idx].symmetry!;
    p.prevSym = lastOfClass.get(cls) ?? -1;
    lastOfClass.set(cls, p.idx);
  }
  return pops;
}

interface Entry {
  isCall: boolean;
  idx: number;
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

type SingleResult = { kind: 'ok'; order: number[] } | { kind: 'fail' } | { kind: 'timeout' };

class Deadline {
  private counter = 0;
  constructor(private readonly at: number) {}
  expired(): boolean {
    if (this.at === Infinity) return false;
    if (++this.counter & 1023) return false;
    return performance.now() > this.at;
  }
  hard(): boolean {
    return this.at !== Infinity && performance.now() > this.at;
  }
}

/** xorshift32 stream used for Zobrist hashing of the linearized set. */
function zobristTable(n: number, seed: number): Int32Array {
  const t = new Int32Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = x;
  }
  return t;
}

interface CacheEntry<S> {
  z2: number;
  bits: Uint32Array;
  state: S;
}

/** Wing & Gong search with Lowe's memoization over one partition (Porcupine's checkSingle). */
function checkSingle<S, I, O>(model: Model<S, I, O>, ops: POp<I, O>[], deadline: Deadline): SingleResult {
  const n = ops.length;
  // Build the event list: calls and (for known outcomes) returns, sorted by time, calls first on ties.
  const events: { time: number; isCall: boolean; idx: number }[] = [];
  let definite = 0;
  for (const o of ops) {
    events.push({ time: o.call, isCall: true, idx: o.idx });
    if (o.ret !== Infinity) {
      events.push({ time: o.ret, isCall: false, idx: o.idx });
      definite++;
    }
  }
  events.sort((a, b) =>
    a.time !== b.time ? a.time - b.time : a.isCall !== b.isCall ? (a.isCall ? -1 : 1) : a.idx - b.idx,
  );
  const head: Entry = { isCall: false, idx: -1, match: null, prev: null, next: null };
  const callEntries: Entry[] = new Array(n);
  const retEntries: (Entry | null)[] = new Array(n).fill(null);
  let last = head;
  for (const ev of events) {
    const e: Entry = { isCall: ev.isCall, idx: ev.idx, match: null, prev: last, next: null };
    last.next = e;
    last = e;
    if (ev.isCall) callEntries[ev.idx] = e;
    else retEntries[ev.idx] = e;
  }
  for (let i = 0; i < n; i++) callEntries[i].match = retEntries[i];

  const lift = (e: Entry): void => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match;
    if (m) {
      m.prev!.next = m.next;
      if (m.next) m.next.prev = m.prev;
    }
  };
  const unlift = (e: Entry): void => {
    const m = e.match;
    if (m) {
      m.prev!.next = m;
      if (m.next) m.next.prev = m;
    }
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };

  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const zA = zobristTable(n, 0x2545f491);
  const zB = zobristTable(n, 0x1b873593);
  const defMask = new Uint32Array(words);
  for (const o of ops) if (o.known) defMask[o.idx >>> 5] |= 1 << (o.idx & 31);
  // Zobrist hashes of the linearized *definite* ops only (unknown-outcome ops are handled by dominance).
  let z1 = 0;
  let z2 = 0;
  const cache = new Map<number, CacheEntry<S>[]>();
  /**
   * Is the current configuration dominated by a cached one: same definite ops linearized, same state, and a
   * subset of the unknown-outcome ops used? (Unknown-outcome ops never have to be linearized, so a
   * configuration that used fewer of them can do everything this one can. With no unknown-outcome ops this
   * is exactly Lowe's/Porcupine's cache of (bitset, state).)
   */
  const dominated = (c: Uint32Array): boolean => {
    for (let i = 0; i < words; i++) {
      const e = c[i];
      const b = bits[i];
      if ((e & ~b) !== 0 || (b & ~e & defMask[i]) !== 0) return false;
    }
    return true;
  };
  /** Insert the current configuration into the cache; false if it was (dominated by) a cached one. */
  const cacheInsert = (state: S): boolean => {
    const k = (z1 ^ Math.imul(model.hash(state), 0x9e3779b1)) | 0;
    let bucket = cache.get(k);
    if (bucket) {
      for (const c of bucket) if (c.z2 === z2 && model.equal(c.state, state) && dominated(c.bits)) return false;
    } else {
      bucket = [];
      cache.set(k, bucket);
    }
    bucket.push({ z2, bits: bits.slice(), state });
    return true;
  };
  const flip = (i: number): void => {
    bits[i >>> 5] ^= 1 << (i & 31);
    if (ops[i].known) {
      z1 ^= zA[i];
      z2 ^= zB[i];
    }
  };

  let state = model.init();
  cacheInsert(state);
  /**
   * Pruning for an unknown-outcome op `o` about to be linearized with result `next` (both prunings are
   * dominance arguments: the cheaper configuration is also explored, and can do everything this one can):
   * - it would not change the state: skipping it is at least as good;
   * - it directly follows another unknown-outcome op `x` whose effect it erases (applying `o` without `x`
   *   gives the same state, e.g. a put after anything): the run without `x` is at least as good.
   */
  const usefulUnknown = (o: POp<I, O>, next: S): boolean => {
    if (model.equal(next, state)) return false;
    const top = stack.length ? stack[stack.length - 1] : undefined;
    if (!top || ops[top.entry.idx].known || o.prevSym === top.entry.idx) return true;
    const alt = model.step(top.state, o.input, o.output, false);
    return alt === undefined || !model.equal(alt, next);
  };
  const stack: { entry: Entry; state: S }[] = [];
  let remaining = definite;
  let entry: Entry | null = head.next;
  // Candidates (calls before the first pending return) are tried in two passes: completed ops first, then
  // unknown-outcome ops. Preferring not to use optional ops makes the configurations that used fewer of
  // them get cached first, so the dominance check prunes the ones that used more.
  let unknownPass = false;
  for (;;) {
    if (remaining === 0) return { kind: 'ok', order: stack.map((f) => f.entry.idx) };
    if (deadline.expired()) return { kind: 'timeout' };
    if (entry !== null && entry.isCall) {
      const o = ops[entry.idx];
      if (o.known === unknownPass) {
        entry = entry.next;
        continue;
      }
      const ps = o.prevSym;
      if (ps >= 0 && (bits[ps >>> 5] & (1 << (ps & 31))) === 0) {
        // an interchangeable op invoked earlier is still unlinearized: use that one first
        entry = entry.next;
        continue;
      }
      const next = model.step(state, o.input, o.output, o.known);
      if (next !== undefined && (o.known || usefulUnknown(o, next))) {
        flip(entry.idx);
        if (cacheInsert(next)) {
          stack.push({ entry, state });
          state = next;
          lift(entry);
          if (o.known) remaining--;
          entry = head.next;
          unknownPass = false;
          continue;
        }
        flip(entry.idx);
      }
      entry = entry.next;
    } else if (!unknownPass) {
      // end of the candidates: now try the unknown-outcome ones
      unknownPass = true;
      entry = head.next;
    } else {
      // A return entry (or, defensively, the end of the list): that op must be linearized first; backtrack.
      const top = stack.pop();
      if (!top) return { kind: 'fail' };
      entry = top.entry;
      state = top.state;
      flip(entry.idx);
      unlift(entry);
      const o = ops[entry.idx];
      if (o.known) remaining++;
      unknownPass = !o.known;
      entry = entry.next;
    }
  }
}

/** Accepts a `History` or an array of operations (e.g. a hand-written history). */
export function checkLinearizable<S, I, O>(
  history: History<I, O> | readonly Operation<I, O>[],
  model: Model<S, I, O>,
  options: CheckOptions = {},
): CheckResult<S, I, O> {
  const all = history instanceof History ? history.operations() : history;
  const deadline = new Deadline(options.timeoutMs === undefined ? Infinity : performance.now() + options.timeoutMs);
  const partitions = new Map<string, Operation<I, O>[]>();
  for (const op of all) {
    if (op.status === 'fail') continue; // definitely not applied
    const known = op.status === 'ok';
    if (!known && model.readOnly?.(op.input)) continue; // an unobserved read constrains nothing
    const key = model.partition ? model.partition(op.input) : '';
    let list = partitions.get(key);
    if (!list) partitions.set(key, (list = []));
    list.push(op);
  }
  let timedOut: string | undefined;
  for (const [key, list] of partitions) {
    const pops = buildPOps(model, list.map((op) => ({ op, known: op.status === 'ok' })));
    const r = checkSingle(model, pops, deadline);
    if (r.kind === 'ok') continue;
    if (r.kind === 'timeout') {
      timedOut ??= key;
      continue;
    }
    return explain(model, key, pops, deadline);
  }
  return timedOut === undefined ? { ok: true } : { ok: 'unknown', reason: 'timeout', key: timedOut };
}

/**
 * The prefix of a key's history ending at the k-th (0-based) definite return: ops invoked at or before that
 * instant; those that had not returned by then become unknown-outcome ops. Linearizability is prefix-closed,
 * so the smallest failing k is found by binary search.
 */
function prefix<S, I, O>(model: Model<S, I, O>, pops: POp<I, O>[], returns: POp<I, O>[], k: number): POp<I, O>[] {
  const t = returns[k].ret;
  const out: { op: Operation<I, O>; known: boolean }[] = [];
  for (const p of pops) {
    if (p.call > t) continue;
    const returned = p.known && (p.ret < t || (p.ret === t && returns.indexOf(p) <= k));
    if (!returned && model.readOnly?.(p.op.input)) continue;
    out.push({ op: p.op, known: returned });
  }
  return buildPOps(model, out);
}

function explain<S, I, O>(model: Model<S, I, O>, key: string, pops: POp<I, O>[], deadline: Deadline): Violation<S, I, O> {
  const returns = pops.filter((p) => p.known).sort((a, b) => a.ret - b.ret || a.idx - b.idx);
  // Invariant: prefix(lo - 1) is linearizable (lo = 0: empty), prefix(hi) is not.
  let lo = 0;
  let hi = returns.length - 1;
  let minimal = true;
  let witnessK = -1;
  let witnessIdx: number[] = [];
  let witnessOps: POp<I, O>[] = [];
  const solve = (k: number): SingleResult => {
    const ops = prefix(model, pops, returns, k);
    const r = checkSingle(model, ops, deadline);
    if (r.kind === 'ok') {
      witnessK = k;
      witnessIdx = r.order;
      witnessOps = ops;
    }
    return r;
  };
  while (lo < hi) {
    if (deadline.hard()) {
      minimal = false;
      break;
    }
    const mid = (lo + hi) >>> 1;
    const r = solve(mid);
    if (r.kind === 'timeout') {
      minimal = false;
      break;
    }
    if (r.kind === 'fail') hi = mid;
    else lo = mid + 1;
  }
  const failing = returns[hi];
  // A linearization of the longest linearizable prefix, if the search did not end on it.
  if (minimal && hi > 0 && witnessK !== hi - 1) solve(hi - 1);
  // Replay it on the original (un-prepared) ops to report concrete states.
  const witness: LinearizationStep<S>[] = [];
  let st = model.init();
  for (const i of witnessIdx) {
    const p = witnessOps[i];
    const next = model.step(st, p.op.input, p.known ? p.op.output : undefined, p.known);
    if (next === undefined) break; // cannot happen for an exact `prepare`
    witness.push({ opId: p.op.id, stateAfter: (st = next) });
  }
  const prefixOps = prefix(model, pops, returns, hi);
  const byId = new Map(pops.map((p) => [p.op.id, p.op] as const));
  const inWitness = new Set(witness.map((s) => s.opId));
  // definite ops overlapping the failing op, and unknown-outcome ops the witness did not use
  const concurrent = prefixOps
    .filter((p) => p.op !== failing.op && p.op.ret !== Infinity && p.op.ret >= failing.call)
    .map((p) => p.op);
  const undecided = prefixOps.filter((p) => p.op.ret === Infinity && !inWitness.has(p.op.id)).map((p) => p.op);
  const tail = witness.slice(-5).map((s) => byId.get(s.opId)!);
  const involvedSet = new Set<Operation<I, O>>([...tail, ...concurrent, ...undecided.slice(-10), failing.op]);
  const involved = [...involvedSet].sort((a, b) => a.call - b.call || a.id - b.id);

  const dOp = (op: Operation<I, O>): string => {
    const known = op.status === 'ok';
    const what = model.describeOperation
      ? model.describeOperation(op.input, op.output, known)
      : `${JSON.stringify(op.input)} -> ${known ? JSON.stringify(op.output) : 'unknown'}`;
    const ret = op.ret === Infinity ? (op.status === 'info' ? 'never (info)' : 'never (pending)') : String(op.ret);
    return `#${op.id} client ${op.clientId}: ${what}  [invoked ${op.call}, returned ${ret}]`;
  };
  const dState = (s: S): string => (model.describeState ? model.describeState(s) : JSON.stringify(s));
  const lines: string[] = [];
  lines.push(`linearizability violation on key ${JSON.stringify(key)} (${pops.length} ops on this key)`);
  lines.push(
    `${minimal ? 'minimal' : 'a (not necessarily minimal)'} failing prefix: the ${prefixOps.length} ops invoked before op #${failing.op.id} returned;` +
      ` no linearization of it exists, while without op #${failing.op.id}'s response one does.`,
  );
  lines.push(`failing op:`);
  lines.push(`  ${dOp(failing.op)}`);
  if (concurrent.length) {
    lines.push(`ops concurrent with it:`);
    for (const op of concurrent) lines.push(`  ${dOp(op)}`);
  }
  if (undecided.length) {
    lines.push(`unknown-outcome ops that could still take effect (${undecided.length}${undecided.length > 10 ? ', latest 10 shown' : ''}):`);
    for (const op of undecided.slice(-10)) lines.push(`  ${dOp(op)}`);
  }
  lines.push(
    witness.length
      ? `a linearization of the longest linearizable prefix (last ${Math.min(witness.length, 5)} of ${witness.length} steps):`
      : `nothing precedes it (the initial state is ${dState(model.init())})`,
  );
  for (const s of witness.slice(-5)) lines.push(`  ${dOp(byId.get(s.opId)!)}   => state ${dState(s.stateAfter)}`);
  return {
    ok: false,
    key,
    failingOp: failing.op,
    involved,
    prefixLength: prefixOps.length,
    minimal,
    partialOrder: witness,
    explanation: lines.join('\n'),
  };
}

/** Throwing helper for tests: passes on ok, fails with the readable report otherwise. */
export function assertLinearizable<S, I, O>(
  history: History<I, O> | readonly Operation<I, O>[],
  model: Model<S, I, O>,
  options: CheckOptions = {},
): void {
  const r = checkLinearizable(history, model, options);
  if (r.ok === true) return;
  if (r.ok === 'unknown') throw new Error(`linearizability check timed out on key ${JSON.stringify(r.key)}`);
  throw new Error(r.explanation);
}
