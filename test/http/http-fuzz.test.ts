// Random and malformed HTTP requests against the client port: never a crash, never a hang, and correct answers after.
import fc from 'fast-check';
import { connect } from 'node:net';
import { startInProcess, InProcessMember } from '../integration/in-process';

jest.setTimeout(120_000);

const PATHS = [
  '/v3/kv/range', '/v3/kv/put', '/v3/kv/deleterange', '/v3/kv/txn', '/v3/kv/compaction', '/v3/lease/grant', '/v3/lease/revoke',
  '/v3/lease/timetolive', '/v3/lease/leases', '/v3/lease/keepalive', '/v3/cluster/member/list', '/v3/maintenance/status',
  '/v3/maintenance/alarm', '/v3/maintenance/hash', '/v3beta/kv/range', '/v2/keys/', '/v2/keys/a', '/v2/keys/a/b', '/v2/members',
  '/v2/stats/self', '/v2/stats/store', '/v2/machines', '/health', '/version', '/v3/nope', '/',
];

const jsonValue = fc.jsonValue({ maxDepth: 3 });
const protoish = fc.record(
  {
    key: fc.oneof(fc.base64String({ maxLength: 12 }), fc.string(), fc.integer(), fc.constant(null)),
    value: fc.oneof(fc.base64String({ maxLength: 12 }), fc.string()),
    range_end: fc.oneof(fc.base64String({ maxLength: 8 }), fc.constant('AA==')),
    limit: fc.oneof(fc.integer(), fc.string(), fc.double()),
    revision: fc.oneof(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String), fc.integer()),
    sort_order: fc.oneof(fc.constantFrom('ASCEND', 'DESCEND', 'NONE', 'X'), fc.integer()),
    TTL: fc.oneof(fc.integer(), fc.string()),
    ID: fc.oneof(fc.integer(), fc.string()),
    compare: fc.array(fc.record({ key: fc.base64String({ maxLength: 8 }), target: fc.constantFrom('VALUE', 'VERSION', 'LEASE', 7), result: fc.constantFrom('EQUAL', 'LESS', 9) }), { maxLength: 3 }),
    success: fc.array(fc.oneof(fc.record({ request_put: fc.record({ key: fc.base64String({ maxLength: 8 }) }) }), jsonValue), { maxLength: 3 }),
    action: fc.oneof(fc.constantFrom('GET', 'ACTIVATE', 'DEACTIVATE'), fc.integer()),
  },
  { requiredKeys: [] },
).map((o) => JSON.stringify(o));

const body = fc.oneof(protoish, jsonValue.map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }), fc.constant(''),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
  fc.dictionary(fc.constantFrom('value', 'ttl', 'dir', 'prevExist', 'prevValue', 'prevIndex', 'recursive', 'sorted', 'refresh', 'waitIndex'), fc.string({ maxLength: 8 })).map((d) => new URLSearchParams(d).toString()));
const query = fc.dictionary(fc.constantFrom('value', 'ttl', 'dir', 'prevExist', 'prevValue', 'prevIndex', 'recursive', 'sorted', 'quorum', 'serializable', 'refresh'), fc.string({ maxLength: 6 }))
  .map((d) => new URLSearchParams(d).toString());
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS'),
  path: fc.oneof(fc.constantFrom(...PATHS), fc.constantFrom(...PATHS).chain((p) => fc.string({ maxLength: 10 }).map((s) => p + encodeURIComponent(s)))),
  query,
  body,
  contentType: fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain', ''),
});

describe('HTTP handlers under random and malformed requests', () => {
  let member: InProcessMember;
  let base = '';
  beforeAll(async () => {
    member = await startInProcess(['--enable-v2']);
    base = `http://${member.endpoint}`;
  }, 60_000);
  afterAll(() => member?.close());

  const stillCorrect = async (n: number) => {
    const key = Buffer.from(`fuzz-check-${n}`).toString('base64');
    const put = await fetch(`${base}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key, value: Buffer.from('ok').toString('base64') }) });
    expect(put.status).toBe(200);
    const got = (await (await fetch(`${base}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key }) })).json()) as any;
    expect(got.kvs[0].value).toBe(Buffer.from('ok').toString('base64'));
    const v2 = await fetch(`${base}/v2/keys/fuzzcheck${n}`, { method: 'PUT', body: new URLSearchParams({ value: 'ok' }) });
    expect(v2.status).toBe(201);
    expect(((await (await fetch(`${base}/v2/keys/fuzzcheck${n}`)).json()) as any).node.value).toBe('ok');
  };

  it('well-formed HTTP with random methods, paths, queries and bodies always gets an answer', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        // watches and keep-alive streams legitimately stay open: those only have to start answering
        const streaming = r.path.startsWith('/v3/watch') || r.path.startsWith('/v3/lease/keepalive') || /wait/.test(r.query);
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(), streaming ? 1000 : 10_000);
        try {
          const headers: Record<string, string> = r.contentType ? { 'content-type': r.contentType } : {};
          const res = await fetch(`${base}${r.path}${r.query ? `?${r.query}` : ''}`, {
            method: r.method,
            body: r.method === 'GET' || r.method === 'HEAD' ? undefined : r.body,
            headers,
            signal: ac.signal,
          });
          expect(res.status).toBeGreaterThanOrEqual(200);
          expect(res.status).toBeLessThan(600);
          if (!streaming) await res.arrayBuffer();
          if (res.status >= 500) expect([500, 501, 503]).toContain(res.status);
        } catch (err) {
          if (!(streaming && ac.signal.aborted)) throw err;
        } finally {
          clearTimeout(timer);
          ac.abort();
        }
      }),
      { numRuns: 200 },
    );
    await stillCorrect(n++);
  });

  it('malformed bytes on the socket never take the server down', async () => {
    const raw = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.string({ maxLength: 200 }).map((s) => Buffer.from(`POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n${s}`)),
      fc.string({ maxLength: 100 }).map((s) => Buffer.from(`GET /v2/keys/${s} HTTP/1.1\r\n${s}\r\n\r\n`)),
      fc.nat({ max: 10_000_000 }).map((n) => Buffer.from(`PUT /v2/keys/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${n}\r\n\r\nvalue=1`)),
      fc.constant(Buffer.from('POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')),
    );
    const [host, port] = member.endpoint.split(':');
    await fc.assert(
      fc.asyncProperty(raw, async (bytes) => {
        await new Promise<void>((resolve) => {
          const sock = connect(Number(port), host, () => sock.end(bytes));
          sock.on('data', () => undefined);
          sock.on('error', () => resolve());
          sock.on('close', () => resolve());
          sock.setTimeout(1500, () => sock.destroy());
        });
      }),
      { numRuns: 100 },
    );
    await stillCorrect(100);
  });
});
