// The v3 JSON gateway with auth enabled, side by side with etcd: the Authorization header carries the token, and the
// gateway applies the same permission checks as the gRPC services (no way around RBAC through curl).
import { b64, httpRequest, normalizeAnswer, Side, startSides } from './http-support';

jest.setTimeout(90_000);

describe('v3 JSON gateway with auth enabled, side by side with etcd', () => {
  let sides: Side[] = [];
  beforeAll(async () => {
    sides = await startSides([]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(sides.map((s) => s.server.stop()));
  });

  /** The same request on every side, each with its own token; the normalised answers must be equal. */
  const same = async (path: string, body: unknown, tokens?: Map<Side, string>): Promise<any> => {
    const answers = await Promise.all(sides.map(async (s) => {
      const token = tokens?.get(s);
      return normalizeAnswer(await httpRequest(s.server.endpoint, 'POST', path, JSON.stringify(body), token ? { Authorization: token } : {}), s);
    }));
    for (let i = 1; i < answers.length; i++) expect({ side: sides[i].kind, answer: answers[i] }).toEqual({ side: sides[i].kind, answer: answers[0] });
    return answers[0];
  };
  const login = async (name: string, password: string): Promise<Map<Side, string>> => {
    const tokens = new Map<Side, string>();
    for (const s of sides) {
      const res = await httpRequest(s.server.endpoint, 'POST', '/v3/auth/authenticate', JSON.stringify({ name, password }));
      expect(res.status).toBe(200);
      tokens.set(s, JSON.parse(res.body).token as string);
    }
    return tokens;
  };

  it('users, roles and permissions through the gateway; every call checked against the token', async () => {
    await same('/v3/auth/user/add', { name: 'root', password: 'rootpw' });
    await same('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await same('/v3/auth/user/add', { name: 'alice', password: 'alicepw' });
    await same('/v3/auth/role/add', { name: 'app' });
    await same('/v3/auth/role/grant', { name: 'app', perm: { permType: 'READWRITE', key: b64('app/'), range_end: b64('app0') } });
    await same('/v3/auth/user/grant', { user: 'alice', role: 'app' });
    expect((await same('/v3/auth/enable', {})).status).toBe(200);

    // No token: refused as etcd refuses it.
    const anonymous = await same('/v3/kv/put', { key: b64('app/a'), value: b64('1') });
    expect(anonymous.status).toBe(400);
    // A made-up token.
    expect((await same('/v3/kv/range', { key: b64('app/a') }, new Map(sides.map((s) => [s, 'not-a-token'])))).status).toBe(401);
    // Wrong password, and an unknown user: the same answer.
    const wrong = await same('/v3/auth/authenticate', { name: 'alice', password: 'nope' });
    expect(await same('/v3/auth/authenticate', { name: 'mallory', password: 'nope' })).toEqual(wrong);

    const alice = await login('alice', 'alicepw');
    expect((await same('/v3/kv/put', { key: b64('app/a'), value: b64('1') }, alice)).status).toBe(200);
    expect((await same('/v3/kv/range', { key: b64('app/a') }, alice)).body[0].kvs).toHaveLength(1);
    // Outside her prefix, in a txn op, a delete, and admin calls: permission denied as etcd says it.
    const denied = await same('/v3/kv/put', { key: b64('other'), value: b64('1') }, alice);
    expect(denied.status).toBe(403);
    await same('/v3/kv/txn', { success: [{ request_put: { key: b64('app/b'), value: b64('2') } }, { request_range: { key: b64('secret') } }] }, alice);
    await same('/v3/kv/deleterange', { key: b64('a'), range_end: b64('z') }, alice);
    await same('/v3/auth/user/list', {}, alice);
    await same('/v3/maintenance/hash', {}, alice);

    const root = await login('root', 'rootpw');
    expect((await same('/v3/kv/put', { key: b64('other'), value: b64('1') }, root)).status).toBe(200);
    expect((await same('/v3/auth/user/list', {}, root)).body[0].users).toEqual(['alice', 'root']);
    await same('/v3/auth/disable', {}, root);
    expect((await same('/v3/kv/range', { key: b64('other') })).status).toBe(200);
  });
});
