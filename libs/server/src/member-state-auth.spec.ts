import { encodeAuthCommand, PermType } from '@nestcd/auth';
import { MvccStore } from '@nestcd/mvcc';
import { EntryKind, MemberState } from './member-state';

const entry = (cmd: Parameters<typeof encodeAuthCommand>[0]) => encodeAuthCommand(cmd);

describe('MemberState: the auth store is replicated state', () => {
  it('auth entries apply deterministically and travel in the member snapshot (tokens do not)', () => {
    const a = new MemberState(new MvccStore());
    const b = new MemberState(new MvccStore());
    const log = [
      entry({ op: 'userAdd', name: 'root', hash: 'scrypt$16384$8$1$c2FsdA==$aGFzaA==', noPassword: false }),
      entry({ op: 'roleAdd', name: 'root' }),
      entry({ op: 'userGrantRole', user: 'root', role: 'root' }),
      entry({ op: 'roleAdd', name: 'r' }),
      entry({ op: 'roleGrantPermission', name: 'r', perm: { permType: PermType.READ, key: Buffer.from('k').toString('base64'), rangeEnd: '' } }),
      entry({ op: 'enable' }),
      entry({ op: 'authenticate', name: 'root', token: 'tok.1' }),
    ];
    for (const e of log) {
      a.apply(EntryKind.Auth, e);
      b.apply(EntryKind.Auth, e);
    }
    expect(b.auth.snapshot()).toEqual(a.auth.snapshot());
    expect(b.auth.authInfo('tok.1')).toEqual({ user: 'root' });

    const restored = new MemberState(new MvccStore());
    restored.restore(a.snapshot());
    expect(restored.auth.enabled).toBe(true);
    expect(restored.auth.user('root')!.roles).toEqual(['root']);
    expect(restored.auth.role('r')!.perms).toHaveLength(1);
    expect(() => restored.auth.authInfo('tok.1')).toThrow('etcdserver: invalid auth token');
  });

  it('a refused change is an etcd error, the same on every member', () => {
    const s = new MemberState(new MvccStore());
    expect(() => s.apply(EntryKind.Auth, entry({ op: 'enable' }))).toThrow('etcdserver: root user does not exist');
  });
});
