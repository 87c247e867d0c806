// Side-by-side HTTP requests against the real etcd and nestcd, with the parts that legitimately differ masked.
import { ServerHandle, ServerKind, startServer } from '../support';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Headers whose presence and (normalised) value must match etcd's. */
const COMPARED_HEADERS = [
  'content-type', 'access-control-allow-origin', 'access-control-allow-methods', 'allow',
  'x-etcd-index', 'x-etcd-cluster-id', 'x-raft-index', 'x-raft-term',
];

export async function httpRequest(
  endpoint: string,
  method: string,
  path: string,
  body?: string | URLSearchParams,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  const res = await fetch(endpoint + path, { method, body, headers, signal: AbortSignal.timeout(20_000) });
  const out: Record<string, string> = {};
  for (const h of COMPARED_HEADERS) {
    const v = res.headers.get(h);
    if (v !== null) out[h] = v;
  }
  return { status: res.status, headers: out, body: await res.text() };
}

/** Reads the first `lines` newline-terminated lines of a streaming answer, then hangs up. */
export async function streamLines(endpoint: string, path: string, body: string, lines: number, afterStart?: () => Promise<unknown>): Promise<{ status: number; lines: string[] }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 20_000);
  try {
    const res = await fetch(endpoint + path, { method: path.startsWith('/v2/') ? 'GET' : 'POST', body: body || undefined, signal: ac.signal });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let started = false;
    while (text.split('\n').length - 1 < lines) {
      if (!started && afterStart) {
        started = true;
        void afterStart();
      }
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    ac.abort();
    return { status: res.status, lines: text.split('\n').slice(0, lines) };
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

export interface Side {
  kind: ServerKind;
  server: ServerHandle;
  /** The v2 index before any test wrote (etcd's own membership writes move it); subtracted when comparing. */
  v2Base: number;
}

export async function startSides(extraArgs: string[] = ['--enable-v2']): Promise<Side[]> {
  const servers = await Promise.all((['etcd', 'nestcd'] as ServerKind[]).map((k) => startServer(k, { extraArgs })));
  const sides: Side[] = [];
  for (const server of servers) {
    let v2Base = 0;
    if (extraArgs.includes('--enable-v2')) {
      const r = await httpRequest(server.endpoint, 'GET', '/v2/keys/');
      v2Base = Number(r.headers['x-etcd-index']);
    }
    sides.push({ kind: server.kind, server, v2Base });
  }
  return sides;
}

const ID_FIELDS = new Set(['cluster_id', 'member_id', 'ID', 'id', 'leader', 'memberID', 'header.member_id']);
const MASKED_FIELDS = new Set(['version', 'dbSize', 'dbSizeInUse', 'raftIndex', 'raftAppliedIndex', 'hash', 'expiration', 'ttl', 'TTL', 'grantedTTL', 'startTime', 'uptime', 'etcdserver', 'blob', 'remaining_bytes']);
const V2_INDEX_FIELDS = new Set(['modifiedIndex', 'createdIndex', 'index']);

/** Masks IDs, sizes, times and ports; shifts v2 indexes by the side's base so both count from zero. */
export function normalizeJson(value: unknown, side: Side, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => normalizeJson(v, side, key));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = normalizeJson(v, side, k);
    return out;
  }
  if (ID_FIELDS.has(key)) return '<ID>';
  if (MASKED_FIELDS.has(key) && !(key === 'version' && typeof value === 'string' && !value.includes('.'))) return '<MASKED>';
  if (V2_INDEX_FIELDS.has(key) && typeof value === 'number') return value === 0 ? 0 : value - side.v2Base;
  if (typeof value === 'string') return normalizeText(value, side);
  return value;
}

export function normalizeText(text: string, side: Side): string {
  return text
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<PORT>')
    .replace(/history has been cleared \[(\d+)\/(\d+)\]/, (_m, a: string, b: string) => `history has been cleared [${Number(a) - side.v2Base}/${Number(b) - side.v2Base}]`)
    // in-order keys are named by the index
    .replace(/\/(\d{20})\b/g, (_m, n: string) => `/${String(Number(n) - side.v2Base).padStart(20, '0')}`);
}

export function normalizeAnswer(a: HttpAnswer, side: Side): unknown {
  let body: unknown = a.body;
  try {
    body = a.body.trim() === '' ? '' : a.body.split('\n').filter(Boolean).map((l) => normalizeJson(JSON.parse(l), side));
  } catch {
    body = normalizeText(a.body, side);
  }
  const headers = { ...a.headers };
  if (headers['x-etcd-cluster-id']) headers['x-etcd-cluster-id'] = '<ID>';
  if (headers['x-raft-index']) headers['x-raft-index'] = '<INDEX>';
  if (headers['x-etcd-index']) {
    const n = Number(headers['x-etcd-index']);
    headers['x-etcd-index'] = String(n === 0 ? 0 : n - side.v2Base);
  }
  return { status: a.status, headers, body, trailingNewline: a.body.endsWith('\n') };
}

/** Sends the same request to every side; expects equal normalised answers; returns etcd's normalised answer. */
export async function compare(sides: Side[], method: string, path: string | ((s: Side) => string), body?: string | URLSearchParams, headers?: Record<string, string>): Promise<any> {
  const answers = await Promise.all(
    sides.map(async (s) => normalizeAnswer(await httpRequest(s.server.endpoint, method, typeof path === 'function' ? path(s) : path, body, headers), s)),
  );
  for (let i = 1; i < answers.length; i++) {
    expect({ side: sides[i].kind, answer: answers[i] }).toEqual({ side: sides[i].kind, answer: answers[0] });
  }
  return answers[0];
}

export const b64 = (s: string) => Buffer.from(s).toString('base64');
