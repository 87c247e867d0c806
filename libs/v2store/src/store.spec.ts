import fc from 'fast-check';
import { V2Code, V2Error } from './errors';
import { HISTORY_CAPACITY, V2Command, V2Event, V2Store } from './store';

const codeOf = (fn: () => unknown): number | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof V2Error) return err.errorCode;
    throw err;
  }
};

describe('V2Store', () => {
  let now = 1_000_000;
  const store = () => new V2Store(() => now);

  it('sets, gets and replaces a key, with the previous node and a rising index', () => {
    const s = store();
    const e1 = s.apply({ op: 'set', path: '/foo', value: 'bar' }) as V2Event;
    expect(e1).toMatchObject({ action: 'set', node: { key: '/foo', value: 'bar', modifiedIndex: 1, createdIndex: 1 }, etcdIndex: 1 });
    expect(e1.prevNode).toBeUndefined();
    const e2 = s.apply({ op: 'set', path: 'foo', value: 'baz' }) as V2Event;
    expect(e2.prevNode).toEqual({ key: '/foo', value: 'bar', modifiedIndex: 1, createdIndex: 1 });
    expect(s.get('/foo').node).toEqual({ key: '/foo', value: 'baz', modifiedIndex: 2, createdIndex: 2 });
  });

  it('creates parent directories, lists them one level or recursively, sorted, hiding _keys', () => {
    const s = store();
    s.apply({ op: 'set', path: '/d/b/x', value: '1' });
    s.apply({ op: 'set', path: '/d/a', value: '2' });
    s.apply({ op: 'set', path: '/d/_hidden', value: '3' });
    expect(s.get('/d', false, true).node).toEqual({
      key: '/d', dir: true, modifiedIndex: 1, createdIndex: 1,
      nodes: [{ key: '/d/a', value: '2', modifiedIndex: 2, createdIndex: 2 }, { key: '/d/b', dir: true, modifiedIndex: 1, createdIndex: 1 }],
    });
    expect(s.get('/d', true, true).node.nodes![1].nodes).toEqual([{ key: '/d/b/x', value: '1', modifiedIndex: 1, createdIndex: 1 }]);
    expect(s.get('/d/_hidden').node.value).toBe('3');
  });

  it("answers etcd's error codes with the cause and the index", () => {
    const s = store();
    s.apply({ op: 'set', path: '/f', value: 'v' });
    s.apply({ op: 'set', path: '/d', dir: true });
    expect(codeOf(() => s.get('/nope'))).toBe(V2Code.KeyNotFound);
    expect(codeOf(() => s.apply({ op: 'set', path: '/f/x', value: '1' }))).toBe(V2Code.NotDir);
    expect(codeOf(() => s.apply({ op: 'set', path: '/d', value: '1' }))).toBe(V2Code.NotFile);
    expect(codeOf(() => s.apply({ op: 'create', path: '/f', value: '1' }))).toBe(V2Code.NodeExist);
    expect(codeOf(() => s.apply({ op: 'set', path: '/', value: '1' }))).toBe(V2Code.RootROnly);
    expect(codeOf(() => s.apply({ op: 'delete', path: '/d' }))).toBe(V2Code.NotFile);
    s.apply({ op: 'set', path: '/d/x', value: '1' });
    expect(codeOf(() => s.apply({ op: 'delete', path: '/d', dir: true }))).toBe(V2Code.DirNotEmpty);
    try {
      s.apply({ op: 'compareAndSwap', path: '/f', prevValue: 'no', prevIndex: 9, value: 'x' });
    } catch (err) {
      expect((err as V2Error).toJSON()).toEqual({ errorCode: 101, message: 'Compare failed', cause: '[no != v] [9 != 1]', index: 3 });
    }
    expect(s.index).toBe(3);
  });

  it('compare-and-swap and compare-and-delete check value and index', () => {
    const s = store();
    s.apply({ op: 'set', path: '/k', value: 'a' });
    expect(codeOf(() => s.apply({ op: 'compareAndSwap', path: '/k', prevValue: 'b', value: 'c' }))).toBe(V2Code.TestFailed);
    expect((s.apply({ op: 'compareAndSwap', path: '/k', prevIndex: 1, value: 'c' }) as V2Event).node.value).toBe('c');
    expect(codeOf(() => s.apply({ op: 'compareAndDelete', path: '/k', prevValue: 'a' }))).toBe(V2Code.TestFailed);
    expect((s.apply({ op: 'compareAndDelete', path: '/k', prevValue: 'c' }) as V2Event).action).toBe('compareAndDelete');
    expect(codeOf(() => s.get('/k'))).toBe(V2Code.KeyNotFound);
  });

  it('in-order keys are named by the index, zero-padded to 20 digits', () => {
    const s = store();
    s.apply({ op: 'set', path: '/x', value: '1' });
    const e = s.apply({ op: 'create', path: '/q', value: 'job', unique: true }) as V2Event;
    expect(e.node.key).toBe('/q/00000000000000000002');
  });

  it('TTL keys render their expiration and expire through the replicated sweep', () => {
    const s = store();
    const e = s.apply({ op: 'set', path: '/t', value: 'v', expireTime: now + 10_000 }) as V2Event;
    expect(e.node.ttl).toBe(10);
    expect(e.node.expiration).toBe(new Date(now + 10_000).toISOString().replace(/\.?0+Z$/, 'Z'));
    expect(s.nextExpiry()).toBe(now + 10_000);
    expect(s.apply({ op: 'expire', now: now + 9_999 })).toEqual([]);
    const expired = s.apply({ op: 'expire', now: now + 10_000 }) as V2Event[];
    expect(expired.map((x) => [x.action, x.node.key])).toEqual([['expire', '/t']]);
    expect(codeOf(() => s.get('/t'))).toBe(V2Code.KeyNotFound);
    // refresh keeps the value and moves the deadline without waking watchers
    s.apply({ op: 'set', path: '/r', value: 'keep', expireTime: now + 1000 });
    const woken: V2Event[] = [];
    s.watch('/r', false, true, 0, (ev) => woken.push(ev));
    s.apply({ op: 'update', path: '/r', value: '', expireTime: now + 5000, refresh: true });
    expect(s.get('/r').node).toMatchObject({ value: 'keep', ttl: 5 });
    expect(woken).toEqual([]);
  });

  it('watches: the next event, a past one from history, recursive, and 401 past the last 1000 events', async () => {
    const s = store();
    const seen: V2Event[] = [];
    s.watch('/w', false, false, 0, (e) => seen.push(e));
    s.apply({ op: 'set', path: '/other', value: '1' });
    s.apply({ op: 'set', path: '/w', value: '2' });
    s.apply({ op: 'set', path: '/w', value: '3' });
    expect(seen.map((e) => e.node.value)).toEqual(['2']);
    const past: V2Event[] = [];
    s.watch('/w', false, false, 1, (e) => past.push(e));
    await Promise.resolve();
    expect(past.map((e) => e.node.modifiedIndex)).toEqual([2]);
    const rec: V2Event[] = [];
    s.watch('/dir', true, true, 0, (e) => rec.push(e));
    s.apply({ op: 'set', path: '/dir/a/b', value: 'x' });
    s.apply({ op: 'delete', path: '/dir', recursive: true });
    expect(rec.map((e) => e.action)).toEqual(['set', 'delete']);
    for (let i = 0; i < HISTORY_CAPACITY + 5; i++) s.apply({ op: 'set', path: '/spam', value: String(i) });
    expect(codeOf(() => s.watch('/w', false, false, 2, () => undefined))).toBe(V2Code.EventIndexCleared);
  });

  it('a snapshot restores the same tree, index and history', () => {
    const s = store();
    s.apply({ op: 'set', path: '/a/b', value: '1', expireTime: now + 5000 });
    s.apply({ op: 'create', path: '/q', unique: true, value: 'x' });
    const copy = store();
    copy.restore(s.snapshot());
    expect(copy.get('/', true, true)).toEqual(s.get('/', true, true));
    expect(copy.index).toBe(s.index);
    expect(copy.nextExpiry()).toBe(now + 5000);
  });
});

/** A deliberately naive model: a map from full path to file value or directory marker. */
class Model {
  files = new Map<string, string>();
  dirs = new Set<string>(['/']);
  index = 0;

  private parentsOf(p: string): string[] {
    const segs = p.split('/').filter(Boolean);
    return segs.slice(0, -1).map((_, i) => `/${segs.slice(0, i + 1).join('/')}`);
  }

  apply(cmd: V2Command): number | undefined {
    if (cmd.op === 'expire') return undefined;
    const p = cmd.path;
    const exists = this.files.has(p) || this.dirs.has(p);
    const isDir = this.dirs.has(p);
    const blocked = this.parentsOf(p).find((d) => this.files.has(d));
    switch (cmd.op) {
      case 'set':
      case 'create': {
        if (p === '/') return V2Code.RootROnly;
        if (blocked) return V2Code.NotDir;
        if (cmd.op === 'create' && exists) return V2Code.NodeExist;
        if (isDir) return V2Code.NotFile;
        for (const d of this.parentsOf(p)) this.dirs.add(d);
        this.files.delete(p);
        if (cmd.dir) this.dirs.add(p);
        else this.files.set(p, cmd.value ?? '');
        this.index++;
        return undefined;
      }
      case 'delete': {
        if (p === '/') return V2Code.RootROnly;
        if (blocked || !exists) return blocked ? V2Code.NotDir : V2Code.KeyNotFound;
        if (isDir) {
          const hasKids = [...this.files.keys(), ...this.dirs].some((k) => k.startsWith(`${p}/`));
          if (!cmd.dir && !cmd.recursive) return V2Code.NotFile;
          if (hasKids && !cmd.recursive) return V2Code.DirNotEmpty;
          for (const k of [...this.files.keys()]) if (k.startsWith(`${p}/`)) this.files.delete(k);
          for (const k of [...this.dirs]) if (k === p || k.startsWith(`${p}/`)) this.dirs.delete(k);
        } else this.files.delete(p);
        this.index++;
        return undefined;
      }
      case 'compareAndSwap': {
        if (p === '/') return V2Code.RootROnly;
        if (blocked || !exists) return blocked ? V2Code.NotDir : V2Code.KeyNotFound;
        if (isDir) return V2Code.NotFile;
        if (cmd.prevValue && this.files.get(p) !== cmd.prevValue) return V2Code.TestFailed;
        this.files.set(p, cmd.value ?? '');
        this.index++;
        return undefined;
      }
      default:
        return undefined;
    }
  }
}

describe('V2Store against a simple model (fast-check)', () => {
  const segment = fc.constantFrom('a', 'b', 'c');
  const path = fc.array(segment, { minLength: 0, maxLength: 3 }).map((s) => `/${s.join('/')}`);
  const value = fc.constantFrom('x', 'y', 'z');
  const command: fc.Arbitrary<V2Command> = fc.oneof(
    fc.record({ op: fc.constant('set' as const), path, value, dir: fc.boolean() }),
    fc.record({ op: fc.constant('create' as const), path, value, dir: fc.boolean() }),
    fc.record({ op: fc.constant('delete' as const), path, dir: fc.boolean(), recursive: fc.boolean() }),
    fc.record({ op: fc.constant('compareAndSwap' as const), path, value, prevValue: value }),
  );

  it('agrees on every outcome, the tree and the index', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 40 }), (cmds) => {
        const s = new V2Store(() => 0);
        const m = new Model();
        for (const cmd of cmds) {
          expect(codeOf(() => s.apply(cmd))).toBe(m.apply(cmd));
          expect(s.index).toBe(m.index);
        }
        const files = new Map<string, string>();
        const dirs = new Set<string>(['/']);
        const walk = (n: ReturnType<V2Store['get']>['node']) => {
          if (n.dir) {
            dirs.add(n.key ?? '/');
            n.nodes?.forEach(walk);
          } else files.set(n.key!, n.value!);
        };
        walk(s.get('/', true).node);
        expect(files).toEqual(m.files);
        expect(dirs).toEqual(m.dirs);
        const restored = new V2Store(() => 0);
        restored.restore(s.snapshot());
        expect(restored.get('/', true, true)).toEqual(s.get('/', true, true));
      }),
      { numRuns: 300 },
    );
  });

  it('a watcher sees exactly the events at or below its key, in index order', () => {
    fc.assert(
      fc.property(path, fc.array(command, { maxLength: 30 }), (watched, cmds) => {
        const s = new V2Store(() => 0);
        const seen: number[] = [];
        s.watch(watched, true, true, 0, (e) => seen.push(e.node.modifiedIndex!));
        const expected: number[] = [];
        for (const cmd of cmds) {
          let e: V2Event | undefined;
          // etcd wakes watchers inside a deleted directory only on nodes that existed (live notifications).
          const watchedExisted = codeOf(() => s.get(watched)) === undefined;
          try {
            e = s.apply(cmd) as V2Event;
          } catch {
            continue;
          }
          const k = e.node.key!;
          const under = k === watched || k.startsWith(watched === '/' ? '/' : `${watched}/`);
          const deletedAbove = e.action === 'delete' && e.prevNode?.dir && watched.startsWith(`${k}/`) && watchedExisted;
          if (under || deletedAbove) expected.push(e.node.modifiedIndex!);
        }
        expect(seen).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('the expiry bookkeeping matches the tree: nextExpiry is the earliest TTL left, the sweep removes exactly the due ones', () => {
    const ttl = fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined });
    const timed: fc.Arbitrary<V2Command> = fc.oneof(
      fc.record({ op: fc.constant('set' as const), path, value, dir: fc.boolean(), expireTime: ttl }),
      fc.record({ op: fc.constant('update' as const), path, value: fc.constant(''), expireTime: ttl }),
      fc.record({ op: fc.constant('delete' as const), path, recursive: fc.boolean() }),
      fc.record({ op: fc.constant('expire' as const), now: fc.integer({ min: 0, max: 60 }) }),
    );
    fc.assert(
      fc.property(fc.array(timed, { maxLength: 40 }), (cmds) => {
        const s = new V2Store(() => 0);
        for (const cmd of cmds) {
          try {
            s.apply(cmd);
          } catch (err) {
            if (!(err instanceof V2Error)) throw err;
          }
          const times: number[] = [];
          const walk = (n: ReturnType<V2Store['get']>['node']) => {
            if (n.expiration) times.push(Date.parse(n.expiration));
            n.nodes?.forEach(walk);
          };
          walk(s.get('/', true).node);
          expect(s.nextExpiry()).toBe(times.length ? Math.min(...times) : undefined);
          if (cmd.op === 'expire') expect(times.every((t) => t > cmd.now)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
