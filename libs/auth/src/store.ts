import { Errors } from '@nestcd/errors';
import { z } from 'zod';
import { AuthErrors } from './errors';
import { isPermitted, Permission, PermType } from './permissions';
import { SimpleTokens } from './tokens';

export const ROOT = 'root';

export interface User {
  name: string;
  /** scrypt record (see password.ts); undefined for a user added with --no-password. */
  hash?: string;
  roles: string[];
  noPassword: boolean;
}

export interface Role {
  name: string;
  perms: Permission[];
}

/** Who asks: the user a token or certificate names, or nobody. */
export interface AuthInfo {
  user?: string;
}

const b64 = z.string().transform((s) => Buffer.from(s, 'base64'));
const permSchema = z.object({ permType: z.nativeEnum(PermType), key: b64, rangeEnd: b64 });
const actor = z.string().optional();

/**
 * One replicated change of the auth store. Passwords are hashed (salt included) by the member that takes the
 * request, BEFORE proposing, so every replica applies the very same record; tokens likewise.
 */
export const AuthCommandSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('enable'), actor }),
  z.object({ op: z.literal('disable'), actor }),
  z.object({ op: z.literal('userAdd'), actor, name: z.string(), hash: z.string().optional(), noPassword: z.boolean() }),
  z.object({ op: z.literal('userDelete'), actor, name: z.string() }),
  z.object({ op: z.literal('userChangePassword'), actor, name: z.string(), hash: z.string().optional() }),
  z.object({ op: z.literal('userGrantRole'), actor, user: z.string(), role: z.string() }),
  z.object({ op: z.literal('userRevokeRole'), actor, name: z.string(), role: z.string() }),
  z.object({ op: z.literal('roleAdd'), actor, name: z.string() }),
  z.object({ op: z.literal('roleDelete'), actor, role: z.string() }),
  z.object({ op: z.literal('roleGrantPermission'), actor, name: z.string(), perm: permSchema }),
  z.object({ op: z.literal('roleRevokePermission'), actor, role: z.string(), key: b64, rangeEnd: b64 }),
  z.object({ op: z.literal('authenticate'), name: z.string(), token: z.string(), issuedAt: z.number().optional() }),
]);
export type AuthCommand = z.input<typeof AuthCommandSchema>;
type ParsedCommand = z.output<typeof AuthCommandSchema>;

/** Buffers travel as base64 in the log entry. */
export function encodeAuthCommand(cmd: AuthCommand): Buffer {
  return Buffer.from(JSON.stringify(cmd));
}

export const permissionToWire = (p: Permission) => ({ permType: p.permType, key: p.key.toString('base64'), rangeEnd: p.rangeEnd.toString('base64') });

const snapshotSchema = z.object({
  enabled: z.boolean(),
  revision: z.number(),
  users: z.array(z.object({ name: z.string(), hash: z.string().optional(), roles: z.array(z.string()), noPassword: z.boolean() })),
  roles: z.array(z.object({ name: z.string(), perms: z.array(permSchema) })),
});

const byName = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * etcd's auth store: users, roles and their key permissions, and whether auth is on. Every change comes
 * through `apply` (a log entry), so it is deterministic; tokens are per member and in memory, as in etcd.
 */
export class AuthStore {
  /** What a fresh store snapshots to: auth off, no users, no roles. */
  static readonly EMPTY_SNAPSHOT = Buffer.from(JSON.stringify({ enabled: false, revision: 1, users: [], roles: [] }));
  enabled = false;
  /** Bumped by every change, as etcd's auth revision. */
  revision = 1;
  private users = new Map<string, User>();
  private roles = new Map<string, Role>();
  readonly tokens: SimpleTokens;
  private tokenSeq = 0;

  constructor(options: { tokenTtlMs?: number; clock?: () => number } = {}) {
    this.tokens = new SimpleTokens(options.tokenTtlMs, options.clock);
  }

  nextTokenSeq(): number {
    return ++this.tokenSeq;
  }

  /** Applies one log entry; throws etcd's error when the change is refused (nothing is changed then). */
  apply(payload: Buffer): unknown {
    let cmd: ParsedCommand;
    try {
      cmd = AuthCommandSchema.parse(JSON.parse(payload.toString()));
    } catch {
      throw Errors.invalidArgument('nestcd: malformed auth entry');
    }
    if (cmd.op !== 'authenticate') this.checkAdmin({ user: cmd.actor });
    switch (cmd.op) {
      case 'enable': {
        if (this.enabled) return undefined;
        const root = this.users.get(ROOT);
        if (!root) throw AuthErrors.rootUserNotExist();
        if (!root.roles.includes(ROOT)) throw AuthErrors.rootRoleNotExist();
        this.enabled = true;
        this.tokens.clear();
        return this.bump();
      }
      case 'disable':
        if (!this.enabled) return undefined;
        this.enabled = false;
        this.tokens.clear();
        return this.bump();
      case 'userAdd':
        if (cmd.name === '') throw AuthErrors.userEmpty();
        if (this.users.has(cmd.name)) throw AuthErrors.userAlreadyExist();
        this.users.set(cmd.name, { name: cmd.name, hash: cmd.noPassword ? undefined : cmd.hash, roles: [], noPassword: cmd.noPassword });
        return this.bump();
      case 'userDelete':
        if (this.enabled && cmd.name === ROOT) throw AuthErrors.invalidAuthMgmt();
        if (!this.users.delete(cmd.name)) throw AuthErrors.userNotFound();
        this.tokens.invalidateUser(cmd.name);
        return this.bump();
      case 'userChangePassword': {
        const user = this.users.get(cmd.name);
        if (!user) throw AuthErrors.userNotFound();
        user.hash = user.noPassword ? undefined : cmd.hash;
        this.tokens.invalidateUser(cmd.name);
        return this.bump();
      }
      case 'userGrantRole': {
        const user = this.users.get(cmd.user);
        if (!user) throw AuthErrors.userNotFound();
        if (cmd.role !== ROOT && !this.roles.has(cmd.role)) throw AuthErrors.roleNotFound();
        if (!user.roles.includes(cmd.role)) user.roles = [...user.roles, cmd.role].sort(byName);
        return this.bump();
      }
      case 'userRevokeRole': {
        if (this.enabled && cmd.name === ROOT && cmd.role === ROOT) throw AuthErrors.invalidAuthMgmt();
        const user = this.users.get(cmd.name);
        if (!user) throw AuthErrors.userNotFound();
        if (!user.roles.includes(cmd.role)) throw AuthErrors.roleNotGranted();
        user.roles = user.roles.filter((r) => r !== cmd.role);
        return this.bump();
      }
      case 'roleAdd':
        if (cmd.name === '') throw AuthErrors.roleEmpty();
        if (this.roles.has(cmd.name)) throw AuthErrors.roleAlreadyExist();
        this.roles.set(cmd.name, { name: cmd.name, perms: [] });
        return this.bump();
      case 'roleDelete':
        if (this.enabled && cmd.role === ROOT) throw AuthErrors.invalidAuthMgmt();
        if (!this.roles.delete(cmd.role)) throw AuthErrors.roleNotFound();
        for (const user of this.users.values()) user.roles = user.roles.filter((r) => r !== cmd.role);
        return this.bump();
      case 'roleGrantPermission': {
        const role = this.roles.get(cmd.name);
        if (!role) throw AuthErrors.roleNotFound();
        const same = role.perms.find((p) => p.key.equals(cmd.perm.key) && p.rangeEnd.equals(cmd.perm.rangeEnd));
        if (same) same.permType = cmd.perm.permType;
        else role.perms = [...role.perms, cmd.perm].sort((a, b) => Buffer.compare(a.key, b.key));
        return this.bump();
      }
      case 'roleRevokePermission': {
        const role = this.roles.get(cmd.role);
        if (!role) throw AuthErrors.roleNotFound();
        const kept = role.perms.filter((p) => !(p.key.equals(cmd.key) && p.rangeEnd.equals(cmd.rangeEnd)));
        if (kept.length === role.perms.length) throw AuthErrors.permissionNotGranted();
        role.perms = kept;
        return this.bump();
      }
      case 'authenticate':
        if (!this.enabled) throw AuthErrors.authNotEnabled();
        if (!this.users.has(cmd.name)) throw AuthErrors.authFailed();
        this.tokens.add(cmd.token, cmd.name, cmd.issuedAt);
        return cmd.token;
    }
  }

  private bump(): number {
    return ++this.revision;
  }

  // ---- reads ----

  user(name: string): User | undefined {
    const u = this.users.get(name);
    return u && { ...u, roles: [...u.roles] };
  }

  role(name: string): Role | undefined {
    const r = this.roles.get(name);
    return r && { name: r.name, perms: r.perms.map((p) => ({ ...p })) };
  }

  userNames(): string[] {
    return [...this.users.keys()].sort(byName);
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort(byName);
  }

  hasRootRole(name: string): boolean {
    return this.users.get(name)?.roles.includes(ROOT) ?? false;
  }

  /**
   * Who a request's token names (etcd's AuthInfoFromCtx): nobody when auth is off; a token that is unknown or
   * expired is refused. Without a token, `certUser` (the client certificate's CN) is the user.
   */
  authInfo(token: string | undefined, certUser?: string): AuthInfo | undefined {
    if (!this.enabled) return undefined;
    if (token !== undefined && token !== '') {
      const user = this.tokens.user(token);
      if (user === undefined) throw AuthErrors.invalidAuthToken();
      return { user };
    }
    return certUser ? { user: certUser } : undefined;
  }

  /** etcd's IsAdminPermitted: the root role (any user when auth is off). */
  checkAdmin(info: AuthInfo | undefined): void {
    if (!this.enabled) return;
    if (!info?.user) throw AuthErrors.userEmpty();
    if (!this.hasRootRole(info.user)) throw AuthErrors.permissionDenied();
  }

  /** etcd's isOpPermitted for [key, rangeEnd) (a single key when rangeEnd is empty). */
  checkPermission(info: AuthInfo | undefined, key: Buffer, rangeEnd: Buffer, wanted: PermType.READ | PermType.WRITE): void {
    if (!this.enabled) return;
    if (!info?.user) throw AuthErrors.userEmpty();
    const user = this.users.get(info.user);
    if (!user) throw AuthErrors.permissionDenied();
    if (user.roles.includes(ROOT)) return;
    const perms = user.roles.flatMap((r) => this.roles.get(r)?.perms ?? []);
    if (!isPermitted(perms, key, rangeEnd, wanted)) throw AuthErrors.permissionDenied();
  }

  // ---- snapshot (part of the member snapshot; tokens stay out, as in etcd) ----

  snapshot(): Buffer {
    return Buffer.from(
      JSON.stringify({
        enabled: this.enabled,
        revision: this.revision,
        users: [...this.users.values()],
        roles: [...this.roles.values()].map((r) => ({ name: r.name, perms: r.perms.map(permissionToWire) })),
      }),
    );
  }

  restore(data: Buffer): void {
    const s = snapshotSchema.parse(JSON.parse(data.toString()));
    this.enabled = s.enabled;
    this.revision = s.revision;
    this.users = new Map(s.users.map((u) => [u.name, { ...u }]));
    this.roles = new Map(s.roles.map((r) => [r.name, r]));
    this.tokens.clear();
  }
}
