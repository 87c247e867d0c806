import * as grpc from '@grpc/grpc-js';
import {
  AuthCommand, AuthErrors, AuthInfo, encodeAuthCommand, hashPassword, newSimpleToken, PermType, verifyPassword,
} from '@nestcd/auth';
import { EntryKind } from '@nestcd/server';
import type { EtcdServer } from '@nestcd/server';
import type { AuthGuard } from './auth-guard';
import { headerOut } from './codec';
import { toServiceError } from './errors';

interface PbPermission {
  permType: number;
  key: Buffer;
  rangeEnd: Buffer;
}

type Handler = (req: any, info: AuthInfo | undefined) => Promise<object> | object;

/**
 * etcd's Auth service. Changes go through the log as EntryKind.Auth entries (passwords hashed and tokens drawn
 * here, before proposing, so every replica applies the same record); reads are served from this member's copy.
 */
export function authHandlers(server: EtcdServer, guard: AuthGuard, log?: (msg: string) => void) {
  const auth = () => server.state.auth;
  const header = () => ({ header: headerOut(server.header()) });
  const propose = async (cmd: AuthCommand): Promise<unknown> => server.proposer.propose(EntryKind.Auth, encodeAuthCommand(cmd));
  const change = (build: (req: any, actor: string | undefined) => Promise<AuthCommand> | AuthCommand): Handler => async (req, info) => {
    // Refuse early what the apply would refuse anyway, so no password is hashed for a caller who may not add users.
    auth().checkAdmin(info);
    await propose(await build(req, info?.user));
    return header();
  };
  const hashUnlessNoPassword = async (password: string, noPassword: boolean) => (noPassword ? undefined : hashPassword(password ?? ''));

  const methods: Record<string, Handler> = {
    AuthEnable: change((_req, actor) => ({ op: 'enable', actor })),
    AuthDisable: change((_req, actor) => ({ op: 'disable', actor })),
    Authenticate: async (req: { name: string; password: string }) => {
      if (!auth().enabled) throw AuthErrors.authNotEnabled();
      // Unknown users and no-password users cost a hash as well, so the answer time tells nothing.
      const user = auth().user(req.name ?? '');
      const ok = await verifyPassword(req.password ?? '', user?.noPassword ? undefined : user?.hash);
      if (!ok) throw AuthErrors.authFailed();
      const token = newSimpleToken(auth().nextTokenSeq());
      await propose({ op: 'authenticate', name: req.name, token, issuedAt: Date.now() });
      return { ...header(), token };
    },
    UserAdd: change(async (req: { name: string; password: string; options?: { noPassword?: boolean } }, actor) => {
      const noPassword = req.options?.noPassword ?? false;
      if ((req.name ?? '') === '') throw AuthErrors.userEmpty();
      if (auth().user(req.name)) throw AuthErrors.userAlreadyExist();
      return { op: 'userAdd', actor, name: req.name, noPassword, hash: await hashUnlessNoPassword(req.password, noPassword) };
    }),
    UserDelete: change((req: { name: string }, actor) => ({ op: 'userDelete', actor, name: req.name ?? '' })),
    UserChangePassword: change(async (req: { name: string; password: string }, actor) => {
      const user = auth().user(req.name ?? '');
      if (!user) throw AuthErrors.userNotFound();
      return { op: 'userChangePassword', actor, name: req.name, hash: await hashUnlessNoPassword(req.password, user.noPassword) };
    }),
    UserGrantRole: change((req: { user: string; role: string }, actor) => ({ op: 'userGrantRole', actor, user: req.user ?? '', role: req.role ?? '' })),
    UserRevokeRole: change((req: { name: string; role: string }, actor) => ({ op: 'userRevokeRole', actor, name: req.name ?? '', role: req.role ?? '' })),
    RoleAdd: change((req: { name: string }, actor) => ({ op: 'roleAdd', actor, name: req.name ?? '' })),
    RoleDelete: change((req: { role: string }, actor) => ({ op: 'roleDelete', actor, role: req.role ?? '' })),
    RoleGrantPermission: change((req: { name: string; perm?: PbPermission }, actor) => {
      const perm = req.perm ?? { permType: PermType.READ, key: Buffer.alloc(0), rangeEnd: Buffer.alloc(0) };
      if (!(perm.permType in PermType)) throw AuthErrors.permissionNotGranted();
      return {
        op: 'roleGrantPermission', actor, name: req.name ?? '',
        perm: { permType: perm.permType, key: (perm.key ?? Buffer.alloc(0)).toString('base64'), rangeEnd: (perm.rangeEnd ?? Buffer.alloc(0)).toString('base64') },
      };
    }),
    RoleRevokePermission: change((req: { role: string; key: Buffer; rangeEnd: Buffer }, actor) => ({
      op: 'roleRevokePermission', actor, role: req.role ?? '',
      key: (req.key ?? Buffer.alloc(0)).toString('base64'), rangeEnd: (req.rangeEnd ?? Buffer.alloc(0)).toString('base64'),
    })),
    // etcd 3.4 lets a user read its own record and the roles it holds; everything else is root's.
    UserGet: async (req: { name: string }, info) => {
      await server.proposer.readBarrier();
      if (!(info?.user !== undefined && info.user === req.name)) auth().checkAdmin(info);
      const user = auth().user(req.name ?? '');
      if (!user) throw AuthErrors.userNotFound();
      return { ...header(), roles: user.roles };
    },
    RoleGet: async (req: { role: string }, info) => {
      await server.proposer.readBarrier();
      const own = info?.user !== undefined && (auth().user(info.user)?.roles.includes(req.role) ?? false);
      if (!own) auth().checkAdmin(info);
      const role = auth().role(req.role ?? '');
      if (!role) throw AuthErrors.roleNotFound();
      return { ...header(), perm: role.perms };
    },
    UserList: async (_req, info) => {
      await server.proposer.readBarrier();
      auth().checkAdmin(info);
      return { ...header(), users: auth().userNames() };
    },
    RoleList: async (_req, info) => {
      await server.proposer.readBarrier();
      auth().checkAdmin(info);
      return { ...header(), roles: auth().roleNames() };
    },
  };

  const handlers: Record<string, grpc.handleUnaryCall<any, any>> = {};
  for (const [name, fn] of Object.entries(methods)) {
    handlers[name] = (call, callback) => {
      Promise.resolve()
        .then(() => fn(call.request, name === 'Authenticate' ? undefined : guard.info(call)))
        .then((res) => callback(null, res), (err) => callback(toServiceError(err, log)));
    };
  }
  return handlers;
}
