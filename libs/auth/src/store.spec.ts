import { EtcdError } from '@nestcd/errors';
import { hashPassword, verifyPassword } from './password';
import { PermType } from './permissions';
import { AuthCommand, AuthStore, encodeAuthCommand } from './store';

const apply = (s: AuthStore, cmd: AuthCommand) => s.apply(encodeAuthCommand(cmd));
const message = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as EtcdError).message;
  }
  return 'ok';
};
const b64 = (s: string) => Buffer.from(s).toString('base64');

function withRoot(): AuthStore {
  const s = new AuthStore();
  apply(s, { op: 'userAdd', name: 'root', hash: 'h', noPassword: false });
  apply(s, { op: 'roleAdd', name: 'root' });
  apply(s, { op: 'userGrantRole', user: 'root', role: 'root' });
  return s;
}

describe('AuthStore', () => {
  it('auth enable needs a root user holding the root role', () => {
    const s = new AuthStore();
    expect(message(() => apply(s, { op: 'enable' }))).toBe('etcdserver: root user does not exist');
    apply(s, { op: 'userAdd', name: 'root', hash: 'h', noPassword: false });
    expect(message(() => apply(s, { op: 'enable' }))).toBe('etcdserver: root user does not have root role');
    apply(s, { op: 'roleAdd', name: 'root' });
    apply(s, { op: 'userGrantRole', user: 'root', role: 'root' });
    apply(s, { op: 'enable' });
    expect(s.enabled).toBe(true);
  });

  it('once enabled, changes need root, and root cannot be removed', () => {
    const s = withRoot();
    apply(s, { op: 'enable' });
    apply(s, { op: 'userAdd', actor: 'root', name: 'u', hash: 'h', noPassword: false });
    expect(message(() => apply(s, { op: 'roleAdd', name: 'x' }))).toBe('etcdserver: user name is empty');
    expect(message(() => apply(s, { op: 'roleAdd', actor: 'u', name: 'x' }))).toBe('etcdserver: permission denied');
    expect(message(() => apply(s, { op: 'userDelete', actor: 'root', name: 'root' }))).toBe('etcdserver: invalid auth management');
    expect(message(() => apply(s, { op: 'userRevokeRole', actor: 'root', name: 'root', role: 'root' }))).toBe('etcdserver: invalid auth management');
    expect(message(() => apply(s, { op: 'roleDelete', actor: 'root', role: 'root' }))).toBe('etcdserver: invalid auth management');
  });

  it("etcd's errors for names that exist, don't, or are empty", () => {
    const s = withRoot();
    expect(message(() => apply(s, { op: 'userAdd', name: '', noPassword: true }))).toBe('etcdserver: user name is empty');
    expect(message(() => apply(s, { op: 'userAdd', name: 'root', noPassword: true }))).toBe('etcdserver: user name already exists');
    expect(message(() => apply(s, { op: 'roleAdd', name: '' }))).toBe('etcdserver: role name is empty');
    expect(message(() => apply(s, { op: 'roleAdd', name: 'root' }))).toBe('etcdserver: role name already exists');
    expect(message(() => apply(s, { op: 'userDelete', name: 'nope' }))).toBe('etcdserver: user name not found');
    expect(message(() => apply(s, { op: 'roleDelete', role: 'nope' }))).toBe('etcdserver: role name not found');
    expect(message(() => apply(s, { op: 'userGrantRole', user: 'root', role: 'nope' }))).toBe('etcdserver: role name not found');
    expect(message(() => apply(s, { op: 'userRevokeRole', name: 'root', role: 'nope' }))).toBe('etcdserver: role is not granted to the user');
    apply(s, { op: 'roleAdd', name: 'r' });
    expect(message(() => apply(s, { op: 'roleRevokePermission', role: 'r', key: b64('k'), rangeEnd: '' }))).toBe('etcdserver: permission is not granted to the role');
  });

  it('permissions: granting the same key again changes its type; deleting a role takes it from its users', () => {
    const s = withRoot();
    apply(s, { op: 'enable' });
    apply(s, { op: 'userAdd', actor: 'root', name: 'u', hash: 'h', noPassword: false });
    apply(s, { op: 'roleAdd', actor: 'root', name: 'r' });
    apply(s, { op: 'userGrantRole', actor: 'root', user: 'u', role: 'r' });
    apply(s, { op: 'roleGrantPermission', actor: 'root', name: 'r', perm: { permType: PermType.READ, key: b64('k'), rangeEnd: '' } });
    const u = { user: 'u' };
    expect(message(() => s.checkPermission(u, Buffer.from('k'), Buffer.alloc(0), PermType.READ))).toBe('ok');
    expect(message(() => s.checkPermission(u, Buffer.from('k'), Buffer.alloc(0), PermType.WRITE))).toBe('etcdserver: permission denied');
    apply(s, { op: 'roleGrantPermission', actor: 'root', name: 'r', perm: { permType: PermType.READWRITE, key: b64('k'), rangeEnd: '' } });
    expect(s.role('r')!.perms).toHaveLength(1);
    expect(message(() => s.checkPermission(u, Buffer.from('k'), Buffer.alloc(0), PermType.WRITE))).toBe('ok');
    apply(s, { op: 'roleDelete', actor: 'root', role: 'r' });
    expect(s.user('u')!.roles).toEqual([]);
    expect(message(() => s.checkPermission(u, Buffer.from('k'), Buffer.alloc(0), PermType.READ))).toBe('etcdserver: permission denied');
  });

  it('tokens: unknown, expired and deleted-user tokens are refused; a snapshot carries users but no tokens', () => {
    let now = 1000;
    const s = new AuthStore({ tokenTtlMs: 100, clock: () => now });
    apply(s, { op: 'userAdd', name: 'root', hash: 'h', noPassword: false });
    apply(s, { op: 'roleAdd', name: 'root' });
    apply(s, { op: 'userGrantRole', user: 'root', role: 'root' });
    expect(message(() => apply(s, { op: 'authenticate', name: 'root', token: 't0' }))).toBe('etcdserver: authentication is not enabled');
    apply(s, { op: 'enable' });
    apply(s, { op: 'authenticate', name: 'root', token: 't1' });
    expect(s.authInfo('t1')).toEqual({ user: 'root' });
    expect(message(() => s.authInfo('other'))).toBe('etcdserver: invalid auth token');
    now += 101;
    expect(message(() => s.authInfo('t1'))).toBe('etcdserver: invalid auth token');
    // replaying an old login (a restart) brings no token back; a fresh one counts from when it was issued
    apply(s, { op: 'authenticate', name: 'root', token: 't2', issuedAt: now - 150 });
    expect(message(() => s.authInfo('t2'))).toBe('etcdserver: invalid auth token');
    apply(s, { op: 'authenticate', name: 'root', token: 't3', issuedAt: now - 50 });
    expect(s.authInfo('t3')).toEqual({ user: 'root' });

    const copy = new AuthStore();
    copy.restore(s.snapshot());
    expect(copy.enabled).toBe(true);
    expect(copy.user('root')).toEqual(s.user('root'));
    expect(copy.tokens.size).toBe(0);
    expect(copy.revision).toBe(s.revision);
  });
});

describe('passwords', () => {
  it('are stored as salted scrypt records, never in clear, and verify', async () => {
    const a = await hashPassword('secret');
    const b = await hashPassword('secret');
    expect(a).not.toContain('secret');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(await verifyPassword('secret', a)).toBe(true);
    expect(await verifyPassword('Secret', a)).toBe(false);
    expect(await verifyPassword('secret', undefined)).toBe(false);
  });

  it('a wrong guess costs a full hash (brute force is slow)', async () => {
    const record = await hashPassword('secret');
    const started = process.hrtime.bigint();
    for (let i = 0; i < 3; i++) expect(await verifyPassword(`guess${i}`, record)).toBe(false);
    const perGuessMs = Number(process.hrtime.bigint() - started) / 3e6;
    expect(perGuessMs).toBeGreaterThan(20);
  });
});
