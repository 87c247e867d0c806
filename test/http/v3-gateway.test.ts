// The v3 JSON gateway, request by request, against the real etcd 3.4 in the same test.
import { b64, compare, httpRequest, normalizeJson, Side, startSides, streamLines } from './http-support';

jest.setTimeout(60_000);

describe('v3 JSON gateway, side by side with etcd', () => {
  let sides: Side[] = [];
  beforeAll(async () => {
    sides = await startSides(['--enable-v2']);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(sides.map((s) => s.server.stop()));
  });
  const post = (path: string, body: unknown) => compare(sides, 'POST', path, typeof body === 'string' ? body : JSON.stringify(body));

  it('kv: range, put, range with options, txn, deleterange, compaction', async () => {
    const empty = await post('/v3/kv/range', { key: b64('a') });
    expect(empty).toMatchObject({ status: 200, body: [{ header: { revision: '1', raft_term: '2' } }] });
    expect(empty.headers['content-type']).toBe('application/json');
    expect(empty.headers['access-control-allow-origin']).toBe('*');
    await post('/v3/kv/put', { key: b64('a'), value: b64('1') });
    await post('/v3/kv/put', { key: b64('b'), value: b64('2'), prev_kv: true });
    const prev = await post('/v3/kv/put', { key: b64('a'), value: b64('3'), prevKv: true });
    expect(prev.body[0].prev_kv).toEqual({ key: b64('a'), create_revision: '2', mod_revision: '2', version: '1', value: b64('1') });
    const ranged = await post('/v3/kv/range', { key: b64('a'), range_end: b64('c'), sort_order: 'DESCEND', sort_target: 'KEY', limit: '1' });
    expect(ranged.body[0]).toMatchObject({ kvs: [{ key: b64('b') }], more: true, count: '2' });
    await post('/v3/kv/range', { key: b64('a'), range_end: b64('c'), keys_only: true, sortOrder: 1 });
    await post('/v3/kv/range', { key: b64('a'), range_end: b64('c'), count_only: true });
    await post('/v3/v3beta/kv/range', {});
    await post('/v3beta/kv/range', { key: b64('a') });
    const txn = await post('/v3/kv/txn', {
      compare: [{ key: b64('a'), target: 'VALUE', result: 'EQUAL', value: b64('3') }],
      success: [{ request_put: { key: b64('c'), value: b64('4') } }, { request_range: { key: b64('c') } }],
      failure: [{ request_delete_range: { key: b64('a') } }],
    });
    expect(txn.body[0].succeeded).toBe(true);
    await post('/v3/kv/txn', { compare: [{ key: b64('a'), target: 'VERSION', result: 'GREATER', version: '5' }], failure: [{ request_range: { key: b64('a') } }] });
    await post('/v3/kv/deleterange', { key: b64('c'), prev_kv: true });
    await post('/v3/kv/deleterange', { key: b64('zz') });
    await post('/v3/kv/compaction', { revision: '3' });
    const compacted = await post('/v3/kv/compaction', { revision: '2' });
    expect(compacted).toMatchObject({ status: 400, body: [{ code: 11, error: 'etcdserver: mvcc: required revision has been compacted' }] });
    await post('/v3/kv/range', { key: b64('a'), revision: '2' });
    await post('/v3/kv/range', { key: b64('a'), revision: '100' });
  });

  it('answers bad requests with 400 and code 3, and unknown paths and methods as etcd does', async () => {
    // etcd's texts come from Go's JSON decoder; the status, the code and the shape must match.
    const shape = async (body: string) => {
      const answers = await Promise.all(sides.map((s) => httpRequest(s.server.endpoint, 'POST', '/v3/kv/range', body)));
      for (const a of answers) {
        expect(a.status).toBe(400);
        const parsed = JSON.parse(a.body);
        expect(Object.keys(parsed)).toEqual(['error', 'message', 'code']);
        expect(parsed.code).toBe(3);
      }
      return JSON.parse(answers[1].body).error as string;
    };
    expect(await shape('{"key":')).toMatch(/JSON/);
    expect(await shape('{"key":"!!!"}')).toMatch(/key: illegal base64/);
    expect(await shape('{"key":5}')).toMatch(/key: .*expected string/);
    expect(await shape('{"key":"YQ==","limit":1.5}')).toMatch(/limit/);
    expect(await shape('{"key":"YQ==","limit":"abc"}')).toMatch(/limit/);
    expect(await shape('[]')).toMatch(/JSON object/);
    expect(await shape('{"key":"YQ==","sort_order":"SIDEWAYS"}')).toBe('unknown value "SIDEWAYS" for enum etcdserverpb.RangeRequest_SortOrder');
    await post('/v3/kv/range', '');
    await post('/v3/kv/put', { value: b64('x') });
    await post('/v3/kv/range', { key: b64('a'), unknown_field: 1 });
    await post('/v3/kv/put', { key: b64('k'), value: b64('v'), lease: '12345' });
    const get = await compare(sides, 'GET', '/v3/kv/range');
    expect(get.status).toBe(405);
    const missing = await post('/v3/kv/nope', {});
    expect(missing.status).toBe(404);
    await post('/v3/maintenance/hashkv', {});
  });

  it('lease: grant, timetolive, leases, keepalive, revoke', async () => {
    const granted = await post('/v3/lease/grant', { TTL: '60', ID: '7777' });
    expect(granted.body[0]).toMatchObject({ ID: '<ID>', TTL: '<MASKED>' });
    await post('/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: '7777' });
    const ttl = await post('/v3/lease/timetolive', { ID: '7777', keys: true });
    expect(ttl.body[0].keys).toEqual([b64('leased')]);
    await post('/v3/kv/lease/timetolive', { ID: '7777' });
    await post('/v3/lease/leases', {});
    await post('/v3/kv/lease/leases', {});
    const answers = await Promise.all(sides.map((s) => streamLines(s.server.endpoint, '/v3/lease/keepalive', '{"ID":"7777"}\n{"ID":"1"}', 2)));
    expect(answers[1].lines.map((l) => normalizeJson(JSON.parse(l), sides[1]))).toEqual(answers[0].lines.map((l) => normalizeJson(JSON.parse(l), sides[0])));
    await post('/v3/lease/revoke', { ID: '7777' });
    const gone = await post('/v3/lease/revoke', { ID: '7777' });
    expect(gone).toMatchObject({ status: 404, body: [{ code: 5, error: 'etcdserver: requested lease not found' }] });
    await post('/v3/kv/lease/revoke', { ID: '7777' });
    await post('/v3/lease/timetolive', { ID: '7777' });
  });

  it('watch streams {"result":...} lines: created, history, then live events', async () => {
    const rev = Number((await post('/v3/kv/range', { key: b64('w') })).body[0].header.revision);
    const answers = await Promise.all(
      sides.map((s) =>
        streamLines(s.server.endpoint, '/v3/watch', JSON.stringify({ create_request: { key: b64('w'), range_end: b64('x'), start_revision: String(rev), prev_kv: true } }), 3, async () => {
          await new Promise((r) => setTimeout(r, 300));
          await httpRequest(s.server.endpoint, 'POST', '/v3/kv/put', JSON.stringify({ key: b64('w1'), value: b64('a') }));
          await httpRequest(s.server.endpoint, 'POST', '/v3/kv/put', JSON.stringify({ key: b64('w1'), value: b64('b') }));
        }),
      ),
    );
    const norm = answers.map((a, i) => ({ status: a.status, lines: a.lines.map((l) => normalizeJson(JSON.parse(l), sides[i])) }));
    expect(norm[1]).toEqual(norm[0]);
    expect(norm[0].lines[0]).toMatchObject({ result: { created: true } });
    expect((norm[0].lines[2] as any).result.events[0]).toMatchObject({ kv: { value: b64('b') }, prev_kv: { value: b64('a') } });
    const bad = await Promise.all(sides.map((s) => streamLines(s.server.endpoint, '/v3/watch', JSON.stringify({ create_request: { key: b64('a'), start_revision: '1' } }), 2)));
    // a watch from a compacted revision: created, then cancelled with the compact revision
    expect(bad[1].lines.map((l) => normalizeJson(JSON.parse(l), sides[1]))).toEqual(bad[0].lines.map((l) => normalizeJson(JSON.parse(l), sides[0])));
  });

  it('cluster and maintenance', async () => {
    const members = await post('/v3/cluster/member/list', {});
    expect(members.body[0].members).toEqual([{ ID: '<ID>', name: 'ref', peerURLs: ['http://127.0.0.1:<PORT>'], clientURLs: ['http://127.0.0.1:<PORT>'] }]);
    const status = await post('/v3/maintenance/status', {});
    expect(Object.keys(status.body[0])).toEqual(['header', 'version', 'dbSize', 'leader', 'raftIndex', 'raftTerm', 'raftAppliedIndex', 'dbSizeInUse']);
    await post('/v3/maintenance/alarm', { action: 'GET' });
    await post('/v3/maintenance/alarm', { action: 'DEACTIVATE', memberID: '1', alarm: 'NOSPACE' });
    await post('/v3/maintenance/alarm', { action: 'BOGUS' });
    await post('/v3/maintenance/defragment', {});
    await post('/v3/maintenance/hash', {});
    const snaps = await Promise.all(sides.map((s) => streamLines(s.server.endpoint, '/v3/maintenance/snapshot', '{}', 1)));
    for (const s of snaps) {
      expect(s.status).toBe(200);
      expect(JSON.parse(s.lines[0]).result.blob.length).toBeGreaterThan(0);
    }
  });

  it('member add/remove/update/promote answer what the gRPC Cluster service answers', async () => {
    const nestcd = sides.find((s) => s.kind === 'nestcd')!;
    const { Etcd3 } = await import('etcd3');
    const client = new Etcd3({ hosts: nestcd.server.endpoint });
    try {
      const viaGrpc = await client.cluster.memberRemove({ ID: '12345' }).then(
        () => ({ ok: true }) as const,
        (err: Error & { code?: number }) => ({ ok: false, message: err.message }),
      );
      const viaJson = await httpRequest(nestcd.server.endpoint, 'POST', '/v3/cluster/member/remove', JSON.stringify({ ID: '12345' }));
      if (viaGrpc.ok) expect(viaJson.status).toBe(200);
      else expect(viaGrpc.message).toContain(JSON.parse(viaJson.body).message);
      // A learner, so the single voter keeps its quorum (an added voter that never starts would cost it the
      // leader, as in etcd) and the member can be removed again afterwards.
      const added = await httpRequest(nestcd.server.endpoint, 'POST', '/v3/cluster/member/add', JSON.stringify({ peerURLs: ['http://127.0.0.1:1'], isLearner: true }));
      expect(added.status).toBe(200);
      const learnerId = JSON.parse(added.body).member.ID as string;
      for (const path of ['update', 'promote']) {
        const a = await httpRequest(nestcd.server.endpoint, 'POST', `/v3/cluster/member/${path}`, JSON.stringify({ ID: learnerId, peerURLs: ['http://127.0.0.1:1'] }));
        expect(a.status).not.toBe(404);
        expect(Object.keys(JSON.parse(a.body)).length).toBeGreaterThan(0);
      }
      const removed = await httpRequest(nestcd.server.endpoint, 'POST', '/v3/cluster/member/remove', JSON.stringify({ ID: learnerId }));
      expect(removed.status).toBe(200);
    } finally {
      client.close();
    }
  });

  it('/health (and ?serializable=true), /version, /metrics', async () => {
    const health = await compare(sides, 'GET', '/health');
    expect(health).toMatchObject({ status: 200, body: [{ health: 'true' }] });
    await compare(sides, 'GET', '/health?serializable=true');
    const version = await compare(sides, 'GET', '/version');
    expect(version.body[0]).toEqual({ etcdserver: '<MASKED>', etcdcluster: '3.4.0' });
    const nestcd = sides.find((s) => s.kind === 'nestcd')!;
    const etcd = sides.find((s) => s.kind === 'etcd')!;
    const names = [
      'etcd_server_has_leader', 'etcd_server_leader_changes_seen_total', 'etcd_server_proposals_committed_total',
      'etcd_server_proposals_applied_total', 'etcd_server_proposals_pending', 'etcd_server_proposals_failed_total',
      'etcd_disk_wal_fsync_duration_seconds', 'etcd_disk_backend_commit_duration_seconds', 'etcd_mvcc_db_total_size_in_bytes',
      'etcd_network_peer_round_trip_time_seconds', 'grpc_server_handled_total', 'process_resident_memory_bytes',
    ];
    for (const side of [etcd, nestcd]) {
      const text = (await httpRequest(side.server.endpoint, 'GET', '/metrics')).body;
      // A single etcd has no peers, and Go's client leaves a histogram with no samples out of the page.
      const expected = side === etcd ? names.filter((n) => n !== 'etcd_network_peer_round_trip_time_seconds') : names;
      for (const name of expected) expect({ side: side.kind, name, present: text.includes(`# TYPE ${name} `) }).toEqual({ side: side.kind, name, present: true });
    }
    const text = (await httpRequest(nestcd.server.endpoint, 'GET', '/metrics')).body;
    expect(text).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="Range"[^}]*\} \d+/);
  });
});
