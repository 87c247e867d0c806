// etcd's v2 HTTP API (--enable-v2): /v2/keys on the replicated v2 store, /v2/members, /v2/machines, /v2/stats.
import type { EtcdServer } from '@nestcd/server';
import { NodeView, V2Code, V2Command, V2Error, V2Event } from '@nestcd/v2store';
import type * as http from 'node:http';
import { readBody } from './v3-gateway';

const KEYS_PREFIX = '/v2/keys';
/** etcd's default v2 request timeout. */
const REQUEST_TIMEOUT_MS = 5000;
const MAX_FORM_BYTES = 4 * 1024 * 1024;

type Form = Map<string, string[]>;

/** Go's strconv.ParseBool. */
function parseBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

const requestError = (code: number, cause: string) => new V2Error(code, cause, 0);

function getBool(form: Form, key: string, code: number = V2Code.InvalidField, cause = `invalid value for "${key}"`): boolean {
  const vals = form.get(key);
  if (!vals) return false;
  const b = parseBool(vals[0]);
  if (b === undefined) throw requestError(code, cause);
  return b;
}

function getUint(form: Form, key: string, code: number, cause: string): number {
  const vals = form.get(key);
  if (!vals) return 0;
  if (!/^\d+$/.test(vals[0]) || BigInt(vals[0]) >= 2n ** 64n) throw requestError(code, cause);
  return Number(vals[0]);
}

const first = (form: Form, key: string): string => form.get(key)?.[0] ?? '';

/** A v2 keys request as etcd's parseKeyRequest reads it from the query and form body. */
interface KeyRequest {
  method: string;
  path: string;
  value: string;
  dir: boolean;
  prevValue: string;
  prevIndex: number;
  prevExist?: boolean;
  wait: boolean;
  waitIndex: number;
  recursive: boolean;
  sorted: boolean;
  quorum: boolean;
  stream: boolean;
  refresh?: boolean;
  ttl?: number;
  noValueOnSuccess: boolean;
}

function parseKeyRequest(method: string, path: string, form: Form): KeyRequest {
  const prevIndex = getUint(form, 'prevIndex', V2Code.IndexNaN, 'invalid value for "prevIndex"');
  const waitIndex = getUint(form, 'waitIndex', V2Code.IndexNaN, 'invalid value for "waitIndex"');
  const recursive = getBool(form, 'recursive');
  const sorted = getBool(form, 'sorted');
  const wait = getBool(form, 'wait');
  const dir = getBool(form, 'dir');
  const quorum = getBool(form, 'quorum');
  const stream = getBool(form, 'stream');
  if (wait && method !== 'GET') throw requestError(V2Code.InvalidField, '"wait" can only be used with GET requests');
  const prevValue = first(form, 'prevValue');
  if (form.has('prevValue') && prevValue === '') throw requestError(V2Code.PrevValueRequired, '"prevValue" cannot be empty');
  const noValueOnSuccess = getBool(form, 'noValueOnSuccess');
  let ttl: number | undefined;
  if (first(form, 'ttl').length > 0) ttl = getUint(form, 'ttl', V2Code.TTLNaN, 'invalid value for "ttl"');
  let prevExist: boolean | undefined;
  if (form.has('prevExist')) prevExist = getBool(form, 'prevExist', V2Code.InvalidField, 'invalid value for prevExist');
  let refresh: boolean | undefined;
  if (form.has('refresh')) {
    refresh = getBool(form, 'refresh', V2Code.InvalidField, 'invalid value for refresh');
    if (refresh) {
      if (form.has('value') && first(form, 'value') !== '') throw requestError(V2Code.RefreshValue, 'A value was provided on a refresh');
      if (ttl === undefined) throw requestError(V2Code.RefreshTTLRequired, 'No TTL value set');
    }
  }
  return {
    method, path, value: first(form, 'value'), dir, prevValue, prevIndex, prevExist, wait, waitIndex, recursive, sorted,
    quorum, stream, refresh, ttl, noValueOnSuccess,
  };
}

/** apply_v2's choice of store operation for a write. */
function commandFor(r: KeyRequest, now: number): V2Command {
  // Go's time.Duration overflows past ~292 years; clamp so a huge TTL stays "far in the future".
  const expireTime = r.ttl === undefined ? undefined : now + Math.min(r.ttl, 9_000_000_000) * 1000;
  const refresh = r.refresh ?? false;
  switch (r.method) {
    case 'POST':
      return { op: 'create', path: r.path, dir: r.dir, value: r.value, unique: true, expireTime };
    case 'DELETE':
      if (r.prevIndex > 0 || r.prevValue !== '') return { op: 'compareAndDelete', path: r.path, prevValue: r.prevValue, prevIndex: r.prevIndex };
      return { op: 'delete', path: r.path, dir: r.dir, recursive: r.recursive };
    default:
      if (r.prevExist !== undefined) {
        if (r.prevExist) {
          if (r.prevIndex === 0 && r.prevValue === '') return { op: 'update', path: r.path, value: r.value, expireTime, refresh };
          return { op: 'compareAndSwap', path: r.path, prevValue: r.prevValue, prevIndex: r.prevIndex, value: r.value, expireTime, refresh };
        }
        return { op: 'create', path: r.path, dir: r.dir, value: r.value, unique: false, expireTime };
      }
      if (r.prevIndex > 0 || r.prevValue !== '') {
        return { op: 'compareAndSwap', path: r.path, prevValue: r.prevValue, prevIndex: r.prevIndex, value: r.value, expireTime, refresh };
      }
      return { op: 'set', path: r.path, dir: r.dir, value: r.value, expireTime, refresh };
  }
}

/** A node with its fields in etcd's (NodeExtern's) order, so bodies match byte for byte. */
function ordered(n: NodeView): NodeView {
  const out: NodeView = {};
  if (n.key !== undefined) out.key = n.key;
  if (n.value !== undefined) out.value = n.value;
  if (n.dir) out.dir = true;
  if (n.expiration !== undefined) out.expiration = n.expiration;
  if (n.ttl) out.ttl = n.ttl;
  if (n.nodes) out.nodes = n.nodes.map(ordered);
  if (n.modifiedIndex) out.modifiedIndex = n.modifiedIndex;
  if (n.createdIndex) out.createdIndex = n.createdIndex;
  return out;
}

const eventBody = (e: V2Event, noValue = false) => {
  if (noValue && ['set', 'compareAndSwap', 'create', 'update'].includes(e.action)) return { action: e.action };
  const node = ordered(e.node);
  return e.prevNode ? { action: e.action, node, prevNode: ordered(e.prevNode) } : { action: e.action, node };
};

/** etcd's member IDs in v2 answers are unpadded lowercase hex. */
const hexId = (id: bigint) => id.toString(16);

export class V2Http {
  private readonly startTime = new Date().toISOString();

  constructor(private readonly server: EtcdServer) {}

  /** Answers a /v2/ request; false when the path is not part of the v2 API. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: URLSearchParams): boolean {
    if (path === KEYS_PREFIX || path.startsWith(`${KEYS_PREFIX}/`)) {
      void this.keys(req, res, decodePath(path.slice(KEYS_PREFIX.length)), query).catch((err) => this.writeError(res, err));
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD' && ['/v2/members', '/v2/machines', '/v2/members/leader'].includes(path)) {
      this.methodNotAllowed(res, ['GET', 'HEAD']);
      return true;
    }
    switch (path) {
      case '/v2/members': {
        this.json(res, 200, { members: this.server.memberList().map((m) => this.memberJson(m)) }, { 'X-Etcd-Cluster-Id': hexId(this.server.clusterId) });
        return true;
      }
      case '/v2/members/leader': {
        const leader = this.server.memberList().find((m) => m.id === this.server.proposer.leader);
        if (!leader) this.json(res, 503, { message: 'During Leader Election' });
        else this.json(res, 200, this.memberJson(leader), { 'X-Etcd-Cluster-Id': hexId(this.server.clusterId) });
        return true;
      }
      case '/v2/machines': {
        const urls = this.server.memberList().flatMap((m) => m.clientUrls);
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end(urls.join(', '));
        return true;
      }
      case '/v2/stats/self': {
        const leader = this.server.proposer.leader;
        this.json(res, 200, {
          name: this.server.config.name,
          id: hexId(this.server.memberId),
          state: this.server.proposer.isLeader ? 'StateLeader' : 'StateFollower',
          startTime: this.startTime,
          leaderInfo: { leader: hexId(leader), uptime: `${((Date.now() - Date.parse(this.startTime)) / 1000).toFixed(6)}s`, startTime: this.startTime },
          recvAppendRequestCnt: 0,
          sendAppendRequestCnt: 0,
        }, {}, false);
        return true;
      }
      case '/v2/stats/leader': {
        if (!this.server.proposer.isLeader) this.json(res, 403, { message: 'not current leader' });
        else {
          const followers: Record<string, object> = {};
          for (const m of this.server.memberList()) {
            if (m.id !== this.server.memberId) followers[hexId(m.id)] = { latency: { current: 0, average: 0, standardDeviation: 0, minimum: 0, maximum: 0 }, counts: { fail: 0, success: 0 } };
          }
          this.json(res, 200, { leader: hexId(this.server.memberId), followers }, {}, false);
        }
        return true;
      }
      case '/v2/stats/store': {
        this.json(res, 200, { ...this.server.v2.stats, watchers: this.server.v2.watcherCount }, {}, false);
        return true;
      }
      default:
        return false;
    }
  }

  private memberJson(m: { id: bigint; name: string; peerUrls: string[]; clientUrls: string[] }) {
    return { id: hexId(m.id), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls };
  }

  private async keys(req: http.IncomingMessage, res: http.ServerResponse, keyPath: string, query: URLSearchParams): Promise<void> {
    const method = req.method ?? 'GET';
    if (!['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].includes(method)) {
      req.resume();
      return this.methodNotAllowed(res, ['HEAD', 'GET', 'PUT', 'POST', 'DELETE']);
    }
    const form: Form = new Map();
    if (method === 'PUT' || method === 'POST' || method === 'DELETE') {
      const body = await readBody(req, MAX_FORM_BYTES);
      const type = req.headers['content-type'] ?? '';
      // Go's ParseForm reads a form body for POST/PUT only, and puts its values before the query's.
      if ((method === 'PUT' || method === 'POST') && (type === '' || type.startsWith('application/x-www-form-urlencoded'))) {
        addAll(form, new URLSearchParams(body));
      }
    } else req.resume();
    addAll(form, query);
    const r = parseKeyRequest(method, keyPath, form);

    if (method === 'GET' || method === 'HEAD') {
      if (r.wait) return this.watch(req, res, r);
      if (r.quorum) await this.server.v2ReadBarrier();
      const ev = this.server.v2.get(r.path, r.recursive, r.sorted);
      return this.writeEvent(res, ev, false, method === 'HEAD');
    }
    const ev = await withTimeout(this.server.v2Write(commandFor(r, Date.now())), REQUEST_TIMEOUT_MS);
    this.writeEvent(res, ev, r.noValueOnSuccess, false);
  }

  private watch(req: http.IncomingMessage, res: http.ServerResponse, r: KeyRequest): void {
    let done = false;
    const watcher = this.server.v2.watch(r.path, r.recursive, r.stream, r.waitIndex, (e) => {
      if (done) return;
      res.write(`${JSON.stringify(eventBody(e))}\n`);
      if (!r.stream || res.writableLength > 16 * 1024 * 1024) {
        done = true;
        watcher.cancel();
        res.end();
      }
    });
    res.writeHead(200, { ...this.indexHeaders(watcher.startIndex), 'Content-Type': 'application/json' });
    res.flushHeaders();
    res.on('close', () => {
      done = true;
      watcher.cancel();
    });
  }

  private indexHeaders(etcdIndex: number): Record<string, string> {
    return {
      'X-Etcd-Cluster-Id': hexId(this.server.clusterId),
      'X-Etcd-Index': String(etcdIndex),
      'X-Raft-Index': String(this.server.proposer.committedIndex),
      'X-Raft-Term': String(this.server.proposer.term),
    };
  }

  private writeEvent(res: http.ServerResponse, ev: V2Event, noValue: boolean, head: boolean): void {
    const created = ev.action === 'create' || (ev.action === 'set' && !ev.prevNode);
    const text = `${JSON.stringify(eventBody(ev, noValue))}\n`;
    res.writeHead(created ? 201 : 200, { ...this.indexHeaders(ev.etcdIndex), 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(head ? undefined : text);
  }

  private writeError(res: http.ServerResponse, err: unknown): void {
    if (res.headersSent) return void res.end();
    let e: V2Error;
    if (err instanceof V2Error) e = err;
    else if (err instanceof Error && err.message === 'request body too large') e = requestError(V2Code.InvalidForm, err.message);
    else e = new V2Error(V2Code.RaftInternal, err instanceof Error ? err.message : String(err), this.server.v2.index);
    const text = `${JSON.stringify(e)}\n`;
    res.writeHead(e.status, {
      'X-Etcd-Cluster-Id': hexId(this.server.clusterId),
      'X-Etcd-Index': String(e.index),
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  private json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, newline = true): void {
    const text = `${JSON.stringify(body)}${newline ? '\n' : ''}`;
    res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private methodNotAllowed(res: http.ServerResponse, methods: string[]): void {
    res.writeHead(405, { Allow: methods.join(','), 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end('Method Not Allowed\n');
  }
}

function addAll(form: Form, params: URLSearchParams): void {
  for (const [k, v] of params) {
    const list = form.get(k);
    if (list) list.push(v);
    else form.set(k, [v]);
  }
}

function decodePath(p: string): string {
  try {
    return decodeURIComponent(p) || '/';
  } catch {
    return p || '/';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('etcdserver: request timed out')), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
