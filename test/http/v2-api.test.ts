// The v2 API (--enable-v2), request by request, against the real etcd 3.4 in the same test.
import { compare, httpRequest, normalizeJson, Side, startSides, streamLines } from './http-support';

jest.setTimeout(90_000);

const form = (fields: Record<string, string>) => new URLSearchParams(fields);

describe('v2 API, side by side with etcd', () => {
  let sides: Side[] = [];
  beforeAll(async () => {
    sides = await startSides(['--enable-v2']);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(sides.map((s) => s.server.stop()));
  });
  const put = (path: string, fields: Record<string, string>) => compare(sides, 'PUT', `/v2/keys${path}`, form(fields));
  const get = (path: string) => compare(sides, 'GET', `/v2/keys${path}`);
  const del = (path: string) => compare(sides, 'DELETE', `/v2/keys${path}`);

  it('set, get, replace: bodies, 201/200 and the X-Etcd-*/X-Raft-* headers', async () => {
    const root = await get('/');
    expect(root).toMatchObject({ status: 200, body: [{ action: 'get', node: { dir: true } }], trailingNewline: true });
    expect(Object.keys(root.headers).sort()).toEqual([
      'access-control-allow-methods', 'access-control-allow-origin', 'content-type', 'x-etcd-cluster-id', 'x-etcd-index', 'x-raft-index', 'x-raft-term',
    ]);
    const created = await put('/foo', { value: 'bar' });
    expect(created).toMatchObject({ status: 201, headers: { 'x-etcd-index': '1', 'x-raft-term': '2' }, body: [{ action: 'set', node: { key: '/foo', value: 'bar', modifiedIndex: 1, createdIndex: 1 } }] });
    const replaced = await put('/foo', { value: 'baz' });
    expect(replaced).toMatchObject({ status: 200, body: [{ prevNode: { value: 'bar' } }] });
    await get('/foo');
    await compare(sides, 'HEAD', '/v2/keys/foo');
    await compare(sides, 'PUT', '/v2/keys/q?value=fromquery');
    await compare(sides, 'PUT', '/v2/keys/q?value=fromquery', form({ value: 'frombody' }));
    const missing = await get('/nope');
    expect(missing).toMatchObject({ status: 404, body: [{ errorCode: 100, message: 'Key not found', cause: '/nope' }] });
  });

  it('directories: mkdir, nested keys, sorted and recursive listings, rmdir, recursive delete', async () => {
    await put('/dir/a', { value: '1' });
    await put('/dir/sub/b', { value: '2' });
    await put('/dir/_hidden', { value: 'h' });
    await put('/emptydir', { dir: 'true' });
    await get('/dir?sorted=true');
    await get('/dir?recursive=true&sorted=true');
    await get('/?recursive=true&sorted=true');
    await get('/dir/_hidden');
    await put('/dir', { value: 'x' });
    await put('/dir/a/deeper', { value: 'x' });
    await put('/emptydir', { dir: 'true' });
    await put('/emptydir', { dir: 'true', prevExist: 'true' });
    await del('/dir');
    await del('/dir?dir=true');
    await del('/emptydir?dir=true');
    await del('/dir?recursive=true');
    await put('/', { value: 'x' });
    await del('/');
    await del('/never');
  });

  it('compare-and-swap and compare-and-delete: prevExist, prevValue, prevIndex', async () => {
    const c = await put('/cas', { value: 'one', prevExist: 'false' });
    expect(c).toMatchObject({ status: 201, body: [{ action: 'create' }] });
    const exists = await put('/cas', { value: 'two', prevExist: 'false' });
    expect(exists).toMatchObject({ status: 412, body: [{ errorCode: 105, message: 'Key already exists', cause: '/cas' }] });
    await put('/cas', { value: 'two', prevExist: 'true' });
    await put('/nocas', { value: 'two', prevExist: 'true' });
    const failed = await put('/cas', { value: 'three', prevValue: 'one' });
    expect(failed).toMatchObject({ status: 412, body: [{ errorCode: 101, cause: '[one != two]' }] });
    await put('/cas', { value: 'three', prevValue: 'two' });
    const idx = (await get('/cas')).body[0].node.modifiedIndex as number;
    await Promise.all(sides.map((s) => httpRequest(s.server.endpoint, 'PUT', `/v2/keys/cas?prevIndex=${idx + s.v2Base}`, form({ value: 'four' }))));
    await get('/cas');
    await del('/cas?prevValue=nope');
    await compare(sides, 'DELETE', (s) => `/v2/keys/cas?prevIndex=${idx + 1 + s.v2Base}&prevValue=four`);
    await get('/cas');
    await put('/cas', { value: 'x', prevValue: '' });
  });

  it('in-order keys: POST to a directory', async () => {
    const a = await compare(sides, 'POST', '/v2/keys/queue', form({ value: 'job1' }));
    expect(a.status).toBe(201);
    expect(a.body[0].node.key).toMatch(/^\/queue\/\d{20}$/);
    await compare(sides, 'POST', '/v2/keys/queue', form({ value: 'job2' }));
    await get('/queue?sorted=true');
  });

  it('TTL keys and refresh', async () => {
    const t = await put('/ttl', { value: 'v', ttl: '100' });
    expect(t.body[0].node).toMatchObject({ expiration: '<MASKED>', ttl: '<MASKED>' });
    await put('/ttl', { ttl: '200', refresh: 'true', prevExist: 'true' });
    await put('/ttl', { value: 'x', ttl: '200', refresh: 'true' });
    await put('/ttl', { refresh: 'true' });
    await put('/ttl', { ttl: 'abc', value: 'x' });
    await put('/ttldir', { dir: 'true', ttl: '100' });
    await get('/ttl');
    // a key with a 1 s TTL is gone soon after (the leader's expiry sweep)
    await put('/short', { value: 'v', ttl: '1' });
    for (const s of sides) {
      const deadline = Date.now() + 10_000;
      let status = 200;
      while (status === 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        status = (await httpRequest(s.server.endpoint, 'GET', '/v2/keys/short')).status;
      }
      expect({ side: s.kind, status }).toEqual({ side: s.kind, status: 404 });
    }
    await get('/short');
  });

  it('bad parameters answer the 2xx codes with status 400 and index 0', async () => {
    await get('/foo?recursive=maybe');
    await get('/foo?waitIndex=x&wait=true');
    await put('/foo', { value: 'x', prevIndex: '-1' });
    await put('/foo', { value: 'x', prevExist: 'perhaps' });
    await put('/foo?wait=true', { value: 'x' });
    await compare(sides, 'PATCH', '/v2/keys/foo');
  });

  it('wait=true: the next change, a past index, recursive, stream, and 401 once the index left the history', async () => {
    const waitOn = (path: string, trigger?: (s: Side) => Promise<unknown>) =>
      Promise.all(sides.map((s) => streamLines(s.server.endpoint, path, '', 1, trigger ? async () => {
        await new Promise((r) => setTimeout(r, 300));
        await trigger(s);
      } : undefined)));
    const live = await waitOn('/v2/keys/watched?wait=true', (s) => httpRequest(s.server.endpoint, 'PUT', '/v2/keys/watched', form({ value: 'now' })));
    const norm = (lines: Awaited<ReturnType<typeof waitOn>>) => lines.map((l, i) => l.lines.map((x) => normalizeJson(JSON.parse(x), sides[i])));
    expect(norm(live)[1]).toEqual(norm(live)[0]);
    expect(norm(live)[0][0]).toMatchObject({ action: 'set', node: { key: '/watched', value: 'now' } });
    const first = (await get('/foo')).body[0].node.modifiedIndex as number;
    const past = await Promise.all(sides.map((s) => streamLines(s.server.endpoint, `/v2/keys/foo?wait=true&waitIndex=${first + s.v2Base}`, '', 1)));
    expect(norm(past)[1]).toEqual(norm(past)[0]);
    const rec = await waitOn('/v2/keys/tree?wait=true&recursive=true', (s) => httpRequest(s.server.endpoint, 'PUT', '/v2/keys/tree/x/y', form({ value: '1' })));
    expect(norm(rec)[1]).toEqual(norm(rec)[0]);
    // push the history past 1000 events, then ask for an index before it
    for (const s of sides) {
      const writes = Array.from({ length: 1010 }, (_, i) => i);
      for (let i = 0; i < writes.length; i += 50) {
        await Promise.all(writes.slice(i, i + 50).map((n) => httpRequest(s.server.endpoint, 'PUT', `/v2/keys/spam/${n % 7}`, form({ value: String(n) }))));
      }
    }
    const cleared = await compare(sides, 'GET', (s) => `/v2/keys/foo?wait=true&waitIndex=${1 + s.v2Base}`);
    expect(cleared).toMatchObject({ status: 400, body: [{ errorCode: 401, message: 'The event in requested index is outdated and cleared' }] });
    expect(cleared.body[0].cause).toMatch(/^the requested history has been cleared \[\d+\/\d+\]$/);
  });

  it('/v2/members, /v2/machines, /v2/stats/*', async () => {
    const members = await compare(sides, 'GET', '/v2/members');
    expect(members.body[0]).toEqual({ members: [{ id: '<ID>', name: 'ref', peerURLs: ['http://127.0.0.1:<PORT>'], clientURLs: ['http://127.0.0.1:<PORT>'] }] });
    await compare(sides, 'GET', '/v2/machines');
    await compare(sides, 'POST', '/v2/machines');
    const shapes = await Promise.all(sides.map(async (s) => {
      const self = JSON.parse((await httpRequest(s.server.endpoint, 'GET', '/v2/stats/self')).body);
      const leader = JSON.parse((await httpRequest(s.server.endpoint, 'GET', '/v2/stats/leader')).body);
      const store = JSON.parse((await httpRequest(s.server.endpoint, 'GET', '/v2/stats/store')).body);
      return { self: Object.keys(self), state: self.state, leaderInfo: Object.keys(self.leaderInfo), leader: Object.keys(leader), followers: leader.followers, store: Object.keys(store) };
    }));
    expect(shapes[1]).toEqual(shapes[0]);
  });
});
