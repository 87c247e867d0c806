// etcd's v2 store (etcd/store): a tree of directories and files with a global index, TTLs, compare-and-swap,
// in-order keys and an event history for watches. Every mutation takes its time from the command, so applying
// the same log gives every member the same tree.
import { V2Code, V2Error } from './errors';

export type V2Action = 'get' | 'set' | 'create' | 'update' | 'compareAndSwap' | 'delete' | 'compareAndDelete' | 'expire';

/** A node as etcd renders it (NodeExtern): the JSON key order is etcd's. */
export interface NodeView {
  key?: string;
  value?: string;
  dir?: boolean;
  expiration?: string;
  ttl?: number;
  nodes?: NodeView[];
  modifiedIndex?: number;
  createdIndex?: number;
}

export interface V2Event {
  action: V2Action;
  node: NodeView;
  prevNode?: NodeView;
  /** The store's index after the operation (X-Etcd-Index); not part of the body. */
  etcdIndex: number;
  /** A refresh (TTL-only update) goes into the history but wakes no watcher. */
  refresh?: boolean;
}

/** A write to replicate; `expireTime` is absolute (ms since the epoch), decided by the member that proposed it. */
export type V2Command =
  | { op: 'set'; path: string; dir?: boolean; value?: string; expireTime?: number; refresh?: boolean }
  | { op: 'create'; path: string; dir?: boolean; value?: string; unique?: boolean; expireTime?: number }
  | { op: 'update'; path: string; value?: string; expireTime?: number; refresh?: boolean }
  | { op: 'compareAndSwap'; path: string; prevValue?: string; prevIndex?: number; value?: string; expireTime?: number; refresh?: boolean }
  | { op: 'delete'; path: string; dir?: boolean; recursive?: boolean }
  | { op: 'compareAndDelete'; path: string; prevValue?: string; prevIndex?: number }
  | { op: 'expire'; now: number };

interface Node {
  path: string;
  createdIndex: number;
  modifiedIndex: number;
  value: string;
  /** undefined for a file */
  children?: Map<string, Node>;
  expireTime?: number;
  parent?: Node;
}

export const HISTORY_CAPACITY = 1000;

export interface V2Watcher {
  readonly key: string;
  readonly recursive: boolean;
  readonly stream: boolean;
  readonly sinceIndex: number;
  /** The store's index when the watch started (X-Etcd-Index of the answer). */
  readonly startIndex: number;
  cancel(): void;
}

interface WatcherEntry extends V2Watcher {
  deliver: (e: V2Event) => void;
  removed: boolean;
}

export interface StoreStats {
  getsSuccess: number; getsFail: number; setsSuccess: number; setsFail: number;
  deleteSuccess: number; deleteFail: number; updateSuccess: number; updateFail: number;
  createSuccess: number; createFail: number; compareAndSwapSuccess: number; compareAndSwapFail: number;
  compareAndDeleteSuccess: number; compareAndDeleteFail: number; expireCount: number; watchers: number;
}

const clean = (p: string): string => {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
};
const isHidden = (name: string) => name.startsWith('_');
const nameOf = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** etcd's v2 store. Reads take a clock only to render remaining TTLs. */
export class V2Store {
  private root: Node = newDir('/', 0);
  index = 0;
  private history: V2Event[] = [];
  /** The nodes with a TTL, so the expiry sweep does not walk the whole tree. */
  private ttlNodes = new Set<Node>();
  private readonly watchers = new Map<string, Set<WatcherEntry>>();
  readonly stats: Omit<StoreStats, 'watchers'> = {
    getsSuccess: 0, getsFail: 0, setsSuccess: 0, setsFail: 0, deleteSuccess: 0, deleteFail: 0, updateSuccess: 0,
    updateFail: 0, createSuccess: 0, createFail: 0, compareAndSwapSuccess: 0, compareAndSwapFail: 0,
    compareAndDeleteSuccess: 0, compareAndDeleteFail: 0, expireCount: 0,
  };

  constructor(private readonly clock: () => number = Date.now) {}

  // ---- reads ----

  get(path: string, recursive = false, sorted = false): V2Event {
    try {
      const key = clean(path);
      const n = this.internalGet(key);
      const node = this.view(n, true, recursive, sorted);
      this.stats.getsSuccess++;
      return { action: 'get', node, etcdIndex: this.index };
    } catch (err) {
      this.stats.getsFail++;
      throw err;
    }
  }

  /** The earliest time a TTL node expires, if any (the leader proposes an expire once it has passed). */
  nextExpiry(): number | undefined {
    let min: number | undefined;
    for (const n of this.ttlNodes) if (min === undefined || n.expireTime! < min) min = n.expireTime;
    return min;
  }

  private setExpireTime(n: Node, expireTime: number | undefined): void {
    n.expireTime = expireTime;
    if (expireTime === undefined) this.ttlNodes.delete(n);
    else this.ttlNodes.add(n);
  }

  // ---- writes (through the log) ----

  apply(cmd: V2Command): V2Event[] | V2Event {
    switch (cmd.op) {
      case 'set': return this.counted('sets', () => this.set(cmd.path, !!cmd.dir, cmd.value ?? '', cmd.expireTime, !!cmd.refresh));
      case 'create': return this.counted('create', () => this.create(cmd.path, !!cmd.dir, cmd.value ?? '', !!cmd.unique, cmd.expireTime));
      case 'update': return this.counted('update', () => this.update(cmd.path, cmd.value ?? '', cmd.expireTime, !!cmd.refresh));
      case 'compareAndSwap':
        return this.counted('compareAndSwap', () => this.compareAndSwap(cmd.path, cmd.prevValue ?? '', cmd.prevIndex ?? 0, cmd.value ?? '', cmd.expireTime, !!cmd.refresh));
      case 'delete': return this.counted('delete', () => this.delete(cmd.path, !!cmd.dir, !!cmd.recursive));
      case 'compareAndDelete': return this.counted('compareAndDelete', () => this.compareAndDelete(cmd.path, cmd.prevValue ?? '', cmd.prevIndex ?? 0));
      case 'expire': return this.deleteExpired(cmd.now);
    }
  }

  private counted(stat: 'sets' | 'create' | 'update' | 'compareAndSwap' | 'delete' | 'compareAndDelete', fn: () => V2Event): V2Event {
    const s = this.stats as unknown as Record<string, number>;
    try {
      const e = fn();
      s[`${stat}Success`]++;
      return e;
    } catch (err) {
      s[`${stat}Fail`]++;
      throw err;
    }
  }

  private set(path: string, dir: boolean, value: string, expireTime: number | undefined, refresh: boolean): V2Event {
    const key = clean(path);
    let prev: Node | undefined;
    try {
      prev = this.internalGet(key);
    } catch (err) {
      if (!(err instanceof V2Error) || err.errorCode !== V2Code.KeyNotFound || refresh) throw err;
    }
    if (refresh && prev) value = prev.value;
    const prevView = prev ? this.view(prev, false, false, false) : undefined;
    const e = this.internalCreate(key, dir, value, false, true, expireTime, 'set');
    if (prevView) e.prevNode = prevView;
    e.etcdIndex = this.index;
    this.record(e, refresh);
    return e;
  }

  private create(path: string, dir: boolean, value: string, unique: boolean, expireTime: number | undefined): V2Event {
    const e = this.internalCreate(path, dir, value, unique, false, expireTime, 'create');
    e.etcdIndex = this.index;
    this.record(e, false);
    return e;
  }

  private internalCreate(path: string, dir: boolean, value: string, unique: boolean, replace: boolean, expireTime: number | undefined, action: V2Action): V2Event {
    const currIndex = this.index;
    const nextIndex = currIndex + 1;
    if (unique) path = `${path}/${String(nextIndex).padStart(20, '0')}`;
    const key = clean(path);
    if (key === '/') throw new V2Error(V2Code.RootROnly, '/', currIndex);
    const parentPath = key.slice(0, key.lastIndexOf('/')) || '/';
    const parent = this.walkCreatingDirs(parentPath, nextIndex);
    const name = nameOf(key);
    const e: V2Event = { action, node: { key, modifiedIndex: nextIndex, createdIndex: nextIndex }, etcdIndex: nextIndex };
    const existing = parent.children!.get(name);
    if (existing) {
      if (!replace) throw new V2Error(V2Code.NodeExist, key, currIndex);
      if (existing.children) throw new V2Error(V2Code.NotFile, key, currIndex);
      e.prevNode = this.view(existing, false, false, false);
      this.remove(existing);
    }
    const n: Node = dir ? newDir(key, nextIndex) : { path: key, createdIndex: nextIndex, modifiedIndex: nextIndex, value };
    if (dir) e.node.dir = true;
    else e.node.value = value;
    this.setExpireTime(n, expireTime);
    n.parent = parent;
    parent.children!.set(name, n);
    this.addTtl(e.node, n);
    this.index = nextIndex;
    return e;
  }

  private update(path: string, value: string, expireTime: number | undefined, refresh: boolean): V2Event {
    const key = clean(path);
    const currIndex = this.index;
    if (key === '/') throw new V2Error(V2Code.RootROnly, '/', currIndex);
    const n = this.internalGet(key);
    if (n.children && value.length !== 0) throw new V2Error(V2Code.NotFile, key, currIndex);
    if (refresh) value = n.value;
    const nextIndex = currIndex + 1;
    const e: V2Event = { action: 'update', node: { key, modifiedIndex: nextIndex, createdIndex: n.createdIndex }, etcdIndex: nextIndex };
    e.prevNode = this.view(n, false, false, false);
    // etcd's node.Write refuses a directory, so an updated directory keeps its modifiedIndex (the event has the new one).
    if (n.children) e.node.dir = true;
    else {
      n.value = value;
      n.modifiedIndex = nextIndex;
      e.node.value = value;
    }
    this.setExpireTime(n, expireTime);
    this.addTtl(e.node, n);
    this.record(e, refresh);
    this.index = nextIndex;
    return e;
  }

  private compareAndSwap(path: string, prevValue: string, prevIndex: number, value: string, expireTime: number | undefined, refresh: boolean): V2Event {
    const key = clean(path);
    if (key === '/') throw new V2Error(V2Code.RootROnly, '/', this.index);
    const n = this.internalGet(key);
    if (n.children) throw new V2Error(V2Code.NotFile, key, this.index);
    this.compare(n, prevValue, prevIndex);
    if (refresh) value = n.value;
    this.index++;
    const e: V2Event = { action: 'compareAndSwap', node: { key, modifiedIndex: this.index, createdIndex: n.createdIndex }, etcdIndex: this.index };
    e.prevNode = this.view(n, false, false, false);
    n.value = value;
    n.modifiedIndex = this.index;
    this.setExpireTime(n, expireTime);
    e.node.value = value;
    this.addTtl(e.node, n);
    this.record(e, refresh);
    return e;
  }

  private compare(n: Node, prevValue: string, prevIndex: number): void {
    const indexMatch = prevIndex === 0 || n.modifiedIndex === prevIndex;
    const valueMatch = prevValue === '' || n.value === prevValue;
    if (indexMatch && valueMatch) return;
    const cause = !indexMatch && valueMatch
      ? `[${prevIndex} != ${n.modifiedIndex}]`
      : indexMatch && !valueMatch
        ? `[${prevValue} != ${n.value}]`
        : `[${prevValue} != ${n.value}] [${prevIndex} != ${n.modifiedIndex}]`;
    throw new V2Error(V2Code.TestFailed, cause, this.index);
  }

  private delete(path: string, dir: boolean, recursive: boolean): V2Event {
    const key = clean(path);
    if (key === '/') throw new V2Error(V2Code.RootROnly, '/', this.index);
    if (recursive) dir = true;
    const n = this.internalGet(key);
    if (n.children) {
      if (!dir) throw new V2Error(V2Code.NotFile, key, this.index);
      if (n.children.size > 0 && !recursive) throw new V2Error(V2Code.DirNotEmpty, key, this.index);
    }
    const nextIndex = this.index + 1;
    const e: V2Event = { action: 'delete', node: { key, modifiedIndex: nextIndex, createdIndex: n.createdIndex }, etcdIndex: nextIndex };
    e.prevNode = this.view(n, false, false, false);
    if (n.children) e.node.dir = true;
    this.index = nextIndex;
    this.removeNotifying(n, e);
    this.record(e, false);
    return e;
  }

  private compareAndDelete(path: string, prevValue: string, prevIndex: number): V2Event {
    const key = clean(path);
    const n = this.internalGet(key);
    if (n.children) throw new V2Error(V2Code.NotFile, key, this.index);
    this.compare(n, prevValue, prevIndex);
    this.index++;
    const e: V2Event = { action: 'compareAndDelete', node: { key, modifiedIndex: this.index, createdIndex: n.createdIndex }, etcdIndex: this.index };
    e.prevNode = this.view(n, false, false, false);
    this.removeNotifying(n, e);
    this.record(e, false);
    return e;
  }

  /** etcd's DeleteExpiredKeys: each node past its time goes with an expire event, earliest first. */
  private deleteExpired(now: number): V2Event[] {
    const events: V2Event[] = [];
    for (;;) {
      let next: Node | undefined;
      for (const n of this.ttlNodes) {
        if (n.expireTime! <= now && (!next || n.expireTime! < next.expireTime! || (n.expireTime === next.expireTime && n.path < next.path))) next = n;
      }
      if (!next) break;
      this.index++;
      const e: V2Event = { action: 'expire', node: { key: next.path, modifiedIndex: this.index, createdIndex: next.createdIndex }, etcdIndex: this.index };
      e.prevNode = this.view(next, false, false, false);
      if (next.children) e.node.dir = true;
      this.removeNotifying(next, e);
      this.stats.expireCount++;
      this.record(e, false);
      events.push(e);
    }
    return events;
  }

  // ---- watches ----

  /**
   * etcd's Watch: an event at or after `sinceIndex` (0: the next one) for `key` (or below it when recursive).
   * A past index is served from the last 1000 events; one older than those fails with 401.
   */
  watch(path: string, recursive: boolean, stream: boolean, sinceIndex: number, deliver: (e: V2Event) => void): V2Watcher {
    const key = clean(path);
    const startIndex = this.index;
    if (sinceIndex === 0) sinceIndex = this.index + 1;
    const historic = this.scanHistory(key, recursive, sinceIndex);
    const w: WatcherEntry = {
      key, recursive, stream, sinceIndex, startIndex, deliver, removed: false,
      cancel: () => this.removeWatcher(w),
    };
    if (historic && !stream) {
      w.removed = true;
      queueMicrotask(() => deliver({ ...historic, etcdIndex: startIndex }));
      return w;
    }
    let set = this.watchers.get(key);
    if (!set) this.watchers.set(key, (set = new Set()));
    set.add(w);
    if (historic) {
      // A streaming watcher gets everything it asked for from history, then live events.
      const fromHistory = this.history.filter((e) => e.node.modifiedIndex! >= historic.node.modifiedIndex! && !e.refresh && this.matches(e, key, recursive));
      queueMicrotask(() => fromHistory.forEach((e) => !w.removed && deliver({ ...e, etcdIndex: startIndex })));
      (w as { sinceIndex: number }).sinceIndex = this.index + 1;
    }
    return w;
  }

  get watcherCount(): number {
    let n = 0;
    for (const s of this.watchers.values()) n += s.size;
    return n;
  }

  private removeWatcher(w: WatcherEntry): void {
    if (w.removed) return;
    w.removed = true;
    const set = this.watchers.get(w.key);
    set?.delete(w);
    if (set && set.size === 0) this.watchers.delete(w.key);
  }

  private matches(e: V2Event, key: string, recursive: boolean): boolean {
    let ok = e.node.key === key;
    if (recursive) ok ||= e.node.key!.startsWith(key === '/' ? '/' : `${key}/`);
    if ((e.action === 'delete' || e.action === 'expire') && e.prevNode?.dir) ok ||= key.startsWith(e.prevNode.key!);
    return ok;
  }

  private scanHistory(key: string, recursive: boolean, index: number): V2Event | undefined {
    const start = this.history.length > 0 ? this.history[0].node.modifiedIndex! : 0;
    if (index < start) {
      throw new V2Error(V2Code.EventIndexCleared, `the requested history has been cleared [${start}/${index}]`, this.index);
    }
    for (const e of this.history) {
      if (e.node.modifiedIndex! < index || e.refresh) continue;
      if (this.matches(e, key, recursive)) return e;
    }
    return undefined;
  }

  private record(e: V2Event, refresh: boolean): void {
    const stored = refresh ? { ...e, refresh: true } : e;
    this.history.push(stored);
    if (this.history.length > HISTORY_CAPACITY) this.history.shift();
    if (!refresh) this.notify(e, e.node.key!, false);
  }

  /** Wakes the watchers on the event's key and on every directory above it (etcd's notifyWatchers). */
  private notify(e: V2Event, path: string, deleted: boolean): void {
    const segments = path.split('/').filter(Boolean);
    const paths = ['/'];
    for (let i = 1; i <= segments.length; i++) paths.push(`/${segments.slice(0, i).join('/')}`);
    for (const p of paths) {
      const set = this.watchers.get(p);
      if (!set) continue;
      const original = p === e.node.key;
      for (const w of [...set]) {
        if ((w.recursive || original || deleted) && e.node.modifiedIndex! >= w.sinceIndex) {
          // etcd hides keys starting with "_" from recursive watchers above them.
          if (!original && w.recursive && isHiddenBelow(e.node.key!, w.key)) continue;
          if (!w.stream) this.removeWatcher(w);
          w.deliver(e);
        }
      }
    }
  }

  // ---- tree helpers ----

  private internalGet(key: string): Node {
    let n = this.root;
    if (key === '/') return n;
    for (const seg of key.split('/').filter(Boolean)) {
      if (!n.children) throw new V2Error(V2Code.NotDir, n.path, this.index);
      const child = n.children.get(seg);
      if (!child) throw new V2Error(V2Code.KeyNotFound, n.path === '/' ? `/${seg}` : `${n.path}/${seg}`, this.index);
      n = child;
    }
    return n;
  }

  private walkCreatingDirs(dirPath: string, index: number): Node {
    let n = this.root;
    for (const seg of dirPath.split('/').filter(Boolean)) {
      let child = n.children!.get(seg);
      if (!child) {
        child = newDir(n.path === '/' ? `/${seg}` : `${n.path}/${seg}`, index);
        child.parent = n;
        n.children!.set(seg, child);
      } else if (!child.children) {
        throw new V2Error(V2Code.NotDir, child.path, this.index);
      }
      n = child;
    }
    return n;
  }

  private remove(n: Node): void {
    n.parent?.children!.delete(nameOf(n.path));
    const forget = (c: Node) => {
      this.ttlNodes.delete(c);
      c.children?.forEach(forget);
    };
    forget(n);
  }

  /** Removes a node; watchers on anything inside a removed directory hear the event too. */
  private removeNotifying(n: Node, e: V2Event): void {
    const visit = (c: Node) => {
      c.children?.forEach(visit);
      if (c !== n) this.notifyDeleted(e, c.path);
    };
    visit(n);
    this.remove(n);
  }

  private notifyDeleted(e: V2Event, path: string): void {
    const set = this.watchers.get(path);
    if (!set) return;
    for (const w of [...set]) {
      if (e.node.modifiedIndex! >= w.sinceIndex) {
        if (!w.stream) this.removeWatcher(w);
        w.deliver(e);
      }
    }
  }

  private addTtl(view: NodeView, n: Node): void {
    if (n.expireTime === undefined) return;
    const { expiration, ttl } = this.expirationAndTtl(n.expireTime);
    view.expiration = expiration;
    view.ttl = ttl;
  }

  private expirationAndTtl(expireTime: number): { expiration: string; ttl: number } {
    const left = expireTime - this.clock();
    // etcd rounds the remaining time up to whole seconds.
    const ttl = Math.ceil(left / 1000);
    // Go's RFC3339Nano drops trailing zeros of the fraction.
    return { expiration: new Date(expireTime).toISOString().replace(/\.?0+Z$/, 'Z'), ttl };
  }

  /** etcd's Repr/loadInternalNode: directories list their (non-hidden) children one level, or all when recursive. */
  private view(n: Node, top: boolean, recursive: boolean, sorted: boolean): NodeView {
    const v: NodeView = {};
    if (n.path !== '/') v.key = n.path;
    if (n.children) {
      v.dir = true;
      if (n.expireTime !== undefined) this.addTtl(v, n);
      if (top || recursive) {
        let kids = [...n.children.values()].filter((c) => !isHidden(nameOf(c.path)));
        if (sorted) kids = kids.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
        const nodes = kids.map((c) => this.view(c, false, recursive, sorted));
        if (nodes.length > 0) v.nodes = nodes;
      }
    } else {
      v.value = n.value;
      if (n.expireTime !== undefined) this.addTtl(v, n);
    }
    if (n.modifiedIndex) v.modifiedIndex = n.modifiedIndex;
    if (n.createdIndex) v.createdIndex = n.createdIndex;
    return v;
  }

  // ---- snapshot ----

  /** The tree, the index and the event history (watches may resume after a restore), as JSON. */
  snapshot(): Buffer {
    const dump = (n: Node): unknown => ({
      p: n.path, c: n.createdIndex, m: n.modifiedIndex, v: n.value, e: n.expireTime,
      k: n.children ? [...n.children.values()].map(dump) : undefined,
    });
    return Buffer.from(JSON.stringify({ index: this.index, root: dump(this.root), history: this.history }));
  }

  /** Back to an empty tree (a member snapshot from before the v2 store existed). */
  clear(): void {
    this.root = newDir('/', 0);
    this.index = 0;
    this.history = [];
    this.ttlNodes = new Set();
  }

  restore(data: Buffer): void {
    type Dumped = { p: string; c: number; m: number; v: string; e?: number; k?: Dumped[] };
    const parsed = JSON.parse(data.toString()) as { index: number; root: Dumped; history: V2Event[] };
    const ttlNodes = new Set<Node>();
    const load = (d: Dumped, parent?: Node): Node => {
      const n: Node = { path: d.p, createdIndex: d.c, modifiedIndex: d.m, value: d.v, parent };
      if (d.e !== undefined && d.e !== null) {
        n.expireTime = d.e;
        ttlNodes.add(n);
      }
      if (d.k) n.children = new Map(d.k.map((c) => [nameOf(c.p), load(c, n)]));
      return n;
    };
    this.root = load(parsed.root);
    this.ttlNodes = ttlNodes;
    this.index = parsed.index;
    this.history = parsed.history;
  }
}

function newDir(path: string, index: number): Node {
  return { path, createdIndex: index, modifiedIndex: index, value: '', children: new Map() };
}

/** True when a segment of `key` below `watchedKey` starts with "_". */
function isHiddenBelow(key: string, watchedKey: string): boolean {
  const rest = watchedKey === '/' ? key : key.slice(watchedKey.length);
  return rest.split('/').some((s) => s.startsWith('_'));
}
