/**
 * Authentication at the gRPC level, side by side with a real etcd 3.4 (both with --auth-token-ttl=3): wrong
 * passwords and unknown users get the same error, and tokens that are expired, from another cluster, of a
 * deleted user or of a user whose password changed are refused with etcd's errors.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEtcdProto } from '@nestcd/api';
import { Etcdctl, ServerHandle, sleep, startEtcd, startNestcd } from '../support';
import { startTlsServer } from './support';

jest.setTimeout(60_000);

type Outcome = { ok: true } | { code: number; details: string };

interface Side {
  server: ServerHandle;
  ctl: Etcdctl;
  auth: grpc.Client & Record<string, Function>;
  kv: grpc.Client & Record<string, Function>;
}

function call(client: grpc.Client & Record<string, Function>, method: string, req: object, token?: string): Promise<{ outcome: Outcome; res?: any }> {
  const md = new grpc.Metadata();
  if (token) md.set('token', token);
  return new Promise((resolve) => {
    client[method](req, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: any) =>
      resolve(err ? { outcome: { code: err.code, details: err.details } } : { outcome: { ok: true }, res }),
    );
  });
}

describe('security: tokens and passwords (etcd vs nestcd)', () => {
  const sides: Side[] = [];
  const ROOT = ['--user=root:rootpw'];

  beforeAll(async () => {
    const servers = await Promise.all([startEtcd({ extraArgs: ['--auth-token-ttl=3'] }), startNestcd({ extraArgs: ['--auth-token-ttl=3'] })]);
    const { etcdserverpb } = loadEtcdProto();
    for (const server of servers) {
      const target = `127.0.0.1:${server.clientPort}`;
      const creds = grpc.credentials.createInsecure();
      sides.push({
        server,
        ctl: new Etcdctl(server.endpoint),
        auth: new etcdserverpb.Auth(target, creds) as never,
        kv: new etcdserverpb.KV(target, creds) as never,
      });
    }
    await Promise.all(
      sides.map(async ({ ctl }) => {
        for (const args of [
          ['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'], ['role', 'add', 'r'],
          ['role', 'grant-permission', '--prefix=true', 'r', 'readwrite', 'k/'],
          ['user', 'add', 'alice:alicepw'], ['user', 'grant-role', 'alice', 'r'],
          ['user', 'add', 'bob:bobpw'], ['user', 'grant-role', 'bob', 'r'],
          ['user', 'add', 'carol:carolpw'], ['user', 'grant-role', 'carol', 'r'],
        ]) {
          await ctl.run(args);
        }
        await ctl.ok(['role', 'add', 'root']).catch(() => undefined);
        await ctl.ok(['user', 'grant-role', 'root', 'root']);
        await ctl.ok(['auth', 'enable']);
      }),
    );
  }, 60_000);

  afterAll(async () => {
    for (const s of sides) {
      s.auth.close();
      s.kv.close();
    }
    await Promise.all(sides.map((s) => s.server.stop()));
  });

  /** The same steps on both servers; the outcomes must be equal. */
  async function both<T>(fn: (s: Side, other: Side) => Promise<T>): Promise<T> {
    const [ref, ours] = await Promise.all([fn(sides[0], sides[1]), fn(sides[1], sides[0])]);
    expect(ours).toEqual(ref);
    return ref;
  }

  const login = async (s: Side, name: string, password: string) => (await call(s.auth, 'Authenticate', { name, password })).res?.token as string;
  const range = async (s: Side, token?: string) => (await call(s.kv, 'Range', { key: Buffer.from('k/a') }, token)).outcome;

  it('a wrong password and an unknown user get the same answer', async () => {
    const outcomes = await both(async (s) => ({
      wrongPassword: (await call(s.auth, 'Authenticate', { name: 'alice', password: 'nope' })).outcome,
      unknownUser: (await call(s.auth, 'Authenticate', { name: 'ghost', password: 'nope' })).outcome,
      emptyName: (await call(s.auth, 'Authenticate', { name: '', password: '' })).outcome,
    }));
    expect(outcomes.wrongPassword).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: authentication failed, invalid user ID or password' });
    expect(outcomes.unknownUser).toEqual(outcomes.wrongPassword);
  });

  it('a good token works; none, a made-up one and one from another cluster are refused', async () => {
    const outcomes = await both(async (s, other) => ({
      good: await range(s, await login(s, 'alice', 'alicepw')),
      none: await range(s),
      madeUp: await range(s, 'AbCdEfGhIjKlMnOp.7'),
      otherCluster: await range(s, await login(other, 'alice', 'alicepw')),
    }));
    expect(outcomes.good).toEqual({ ok: true });
    expect(outcomes.none).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: user name is empty' });
    expect(outcomes.madeUp).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    expect(outcomes.otherCluster).toEqual(outcomes.madeUp);
  });

  it("a deleted user's token, and the old token of a user whose password changed, are refused", async () => {
    const outcomes = await both(async (s) => {
      const bobToken = await login(s, 'bob', 'bobpw');
      const carolToken = await login(s, 'carol', 'carolpw');
      await s.ctl.ok([...ROOT, 'user', 'delete', 'bob']);
      await s.ctl.ok([...ROOT, 'user', 'passwd', 'carol', '--interactive=false'], { stdin: 'carolpw2\n' });
      return {
        deleted: await range(s, bobToken),
        passwordChanged: await range(s, carolToken),
        newPassword: await range(s, await login(s, 'carol', 'carolpw2')),
        oldPassword: (await call(s.auth, 'Authenticate', { name: 'carol', password: 'carolpw' })).outcome,
      };
    });
    expect(outcomes.deleted).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    expect(outcomes.newPassword).toEqual({ ok: true });
  });

  it("a user whose role was revoked keeps a valid token but loses the permission", async () => {
    const outcomes = await both(async (s) => {
      const token = await login(s, 'alice', 'alicepw');
      const before = await range(s, token);
      await s.ctl.ok([...ROOT, 'user', 'revoke-role', 'alice', 'r']);
      const after = await range(s, token);
      await s.ctl.ok([...ROOT, 'user', 'grant-role', 'alice', 'r']);
      return { before, after };
    });
    expect(outcomes.after).toEqual({ code: grpc.status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
  });

  it('an unused token expires after --auth-token-ttl', async () => {
    const tokens = await Promise.all(sides.map((s) => login(s, 'alice', 'alicepw')));
    await sleep(5000);
    const outcomes = await Promise.all(sides.map((s, i) => range(s, tokens[i])));
    expect(outcomes[1]).toEqual(outcomes[0]);
    expect(outcomes[0]).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
  });

  it('Authenticate with auth disabled says so', async () => {
    const outcomes = await both(async (s) => {
      await s.ctl.ok([...ROOT, 'auth', 'disable']);
      return (await call(s.auth, 'Authenticate', { name: 'alice', password: 'alicepw' })).outcome;
    });
    expect(outcomes).toEqual({ code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: authentication is not enabled' });
  });
});

describe('security: the auth store survives a restart (nestcd)', () => {
  it('users, roles and auth enable come back from the data dir (WAL and snapshots); tokens do not', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sec-restart-'));
    const flags = ['--snapshot-count=5'];
    let server = await startTlsServer('nestcd', flags, [], { scheme: 'http', dataDir });
    try {
      const ctl = new Etcdctl(server.endpoint);
      for (const args of [['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'], ['role', 'add', 'r'],
        ['role', 'grant-permission', 'r', 'read', 'k'], ['user', 'add', 'dave:davepw'], ['user', 'grant-role', 'dave', 'r'], ['auth', 'enable']]) {
        await ctl.run(args);
      }
      const { etcdserverpb } = loadEtcdProto();
      const authClient = (port: number) => new etcdserverpb.Auth(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as never as grpc.Client & Record<string, Function>;
      let auth = authClient(server.clientPort);
      const token = (await call(auth, 'Authenticate', { name: 'dave', password: 'davepw' })).res.token as string;
      auth.close();
      await server.stop();
      // with auth on, `endpoint health` needs a user (as with etcd)
      server = await startTlsServer('nestcd', flags, ['--user=root:rootpw'], { scheme: 'http', dataDir, clientPort: server.clientPort, peerPort: server.peerPort });
      const after = new Etcdctl(server.endpoint);
      expect((await after.run(['get', 'k'])).stderr).toMatch(/etcdserver: user name is empty/);
      expect(await after.ok(['--user=root:rootpw', 'user', 'list'])).toBe('dave\nroot\n');
      expect(await after.ok(['--user=root:rootpw', 'role', 'get', 'r'])).toBe('Role r\nKV Read:\n\tk\nKV Write:\n');
      const kv = new (loadEtcdProto().etcdserverpb.KV)(`127.0.0.1:${server.clientPort}`, grpc.credentials.createInsecure()) as never as grpc.Client & Record<string, Function>;
      expect((await call(kv, 'Range', { key: Buffer.from('k') }, token)).outcome).toEqual({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
      kv.close();
      auth = authClient(server.clientPort);
      expect((await call(auth, 'Authenticate', { name: 'dave', password: 'davepw' })).outcome).toEqual({ ok: true });
      auth.close();
    } finally {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
