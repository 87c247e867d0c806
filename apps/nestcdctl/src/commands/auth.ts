// user / role / auth: etcdctl 3.4's auth commands (ctlv3/command/{user,role,auth}_command.go), same words and exit codes.
import { ClientError, prefixEnd, type PermissionType } from '@nestcd/client';
import { Command, Option } from 'commander';
import type { Cli } from '../cli';
import { errorText, ExitCode, fail, out } from '../context';
import { askPassword, readLine } from '../password';

/** clientv3's rpctypes.ErrRootRoleNotExist: `auth enable` then creates the root role and grants it to root. */
const ROOT_ROLE_MISSING = 'etcdserver: root user does not have root role';

/** etcdctl's readPasswordInteractive: a password and its confirmation from the terminal. */
async function readPasswordInteractive(name: string): Promise<string> {
  const first = await askPassword(`Password of ${name}: `);
  if (first.length === 0) fail(ExitCode.BadArgs, 'empty password');
  const second = await askPassword(`Type password of ${name} again for confirmation: `);
  if (first !== second) fail(ExitCode.BadArgs, 'given passwords are different');
  return first;
}

/** fmt.Scanf("%s"): the first whitespace-separated word on stdin ('' at EOF or on an empty line). */
async function scanWord(): Promise<string> {
  const line = await readLine();
  return /^[ \t]*(\S*)/.exec(line)![1];
}

const readPassword = (name: string, interactive: boolean): Promise<string> => (interactive ? readPasswordInteractive(name) : scanWord());

/** etcdctl's permRange: the key and range end a grant/revoke covers, from KEY [RANGE_END] and --prefix/--from-key. */
function permRange(args: string[], o: { prefix?: boolean; fromKey?: boolean }): { key: Buffer; rangeEnd: Buffer } {
  const key = args[0];
  if (key.length === 0) {
    if (o.prefix && o.fromKey) fail(ExitCode.BadArgs, '--from-key and --prefix flags are mutually exclusive');
    // the empty key as a permission is ["\x00", end): with --prefix or --from-key the whole keyspace.
    return { key: Buffer.from([0]), rangeEnd: o.prefix || o.fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
  }
  const k = Buffer.from(key);
  if (args.length === 1) {
    if (o.prefix) {
      if (o.fromKey) fail(ExitCode.BadArgs, '--from-key and --prefix flags are mutually exclusive');
      return { key: k, rangeEnd: prefixEnd(k) };
    }
    return { key: k, rangeEnd: o.fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
  }
  if (o.prefix) fail(ExitCode.BadArgs, 'unexpected endkey argument with --prefix flag');
  if (o.fromKey) fail(ExitCode.BadArgs, 'unexpected endkey argument with --from-key flag');
  return { key: k, rangeEnd: Buffer.from(args[1]) };
}

function permissionType(s: string): PermissionType {
  const t = s.toUpperCase();
  if (t === 'READ' || t === 'WRITE' || t === 'READWRITE') return t;
  return fail(ExitCode.BadArgs, `invalid permission type: ${s}`);
}

/** Runs the call; a failure is `Error: <etcd's message>` with ExitError, as etcdctl's ExitWithError(ExitError, err). */
async function call<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    return fail(ExitCode.Error, errorText(err));
  }
}

interface PasswordOptions {
  interactive: boolean;
}

export function registerAuth(program: Command, cli: Cli): void {
  // pflag's --interactive defaults to true here; `--interactive=false` arrives as --no-interactive (see normalizeArgv).
  const interactiveFlags = (c: Command) =>
    c
      .addOption(new Option('--interactive', 'Read password from stdin instead of interactive terminal').default(true))
      .addOption(new Option('--no-interactive').hideHelp());

  // ---- user ----
  const user = program.command('user').summary('User related commands');

  interactiveFlags(
    user
      .command('add')
      .summary('Adds a new user')
      .usage('<user name or user:password> [options]')
      .argument('[args...]')
      .option('--new-user-password <password>', 'Supply password from the command line flag')
      .option('--no-password', 'Create a user without password (CN based auth only)'),
  ).action(async (args: string[], o: PasswordOptions & { newUserPassword?: string; password?: boolean }) => {
    if (args.length !== 1) fail(ExitCode.BadArgs, 'user add command requires user name as its argument');
    const noPassword = o.password === false;
    let name = args[0];
    let password = '';
    if (!noPassword) {
      if (o.newUserPassword) password = o.newUserPassword;
      else {
        const i = args[0].indexOf(':');
        if (i < 0) password = await readPassword(name, o.interactive);
        else {
          name = args[0].slice(0, i);
          password = args[0].slice(i + 1);
          if (name.length === 0) fail(ExitCode.BadArgs, 'empty user name is not allowed');
        }
      }
    }
    const r = await call(cli.client.userAdd(name, password, noPassword));
    out(cli.printer().authChange(`User ${name} created`, r));
  });

  user
    .command('delete')
    .summary('Deletes a user')
    .usage('<user name>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'user delete command requires user name as its argument');
      const r = await call(cli.client.userDelete(args[0]));
      out(cli.printer().authChange(`User ${args[0]} deleted`, r));
    });

  user
    .command('get')
    .summary('Gets detailed information of a user')
    .usage('<user name> [options]')
    .argument('[args...]')
    .option('--detail', 'Show permissions of roles granted to the user')
    .action(async (args: string[], o: { detail?: boolean }) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'user get command requires user name as its argument');
      const name = args[0];
      const r = await call(cli.client.userGet(name));
      const p = cli.printer();
      if (!o.detail) return out(p.userGet(name, r));
      out(`User: ${name}\n`);
      for (const role of r.roles) {
        out('\n');
        out(p.roleGet(role, await call(cli.client.roleGet(role))));
      }
    });

  user
    .command('list')
    .summary('Lists all users')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 0) fail(ExitCode.BadArgs, 'user list command requires no arguments');
      out(cli.printer().userList(await call(cli.client.userList())));
    });

  interactiveFlags(
    user.command('passwd').summary('Changes password of user').usage('<user name> [options]').argument('[args...]'),
  ).action(async (args: string[], o: PasswordOptions) => {
    if (args.length !== 1) fail(ExitCode.BadArgs, 'user passwd command requires user name as its argument');
    const password = await readPassword(args[0], o.interactive);
    const r = await call(cli.client.userChangePassword(args[0], password));
    out(cli.printer().authChange('Password updated', r));
  });

  user
    .command('grant-role')
    .summary('Grants a role to a user')
    .usage('<user name> <role name>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 2) fail(ExitCode.BadArgs, 'user grant command requires user name and role name as its argument');
      const r = await call(cli.client.userGrantRole(args[0], args[1]));
      out(cli.printer().authChange(`Role ${args[1]} is granted to user ${args[0]}`, r));
    });

  user
    .command('revoke-role')
    .summary('Revokes a role from a user')
    .usage('<user name> <role name>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 2) fail(ExitCode.BadArgs, 'user revoke-role requires user name and role name as its argument');
      const r = await call(cli.client.userRevokeRole(args[0], args[1]));
      out(cli.printer().authChange(`Role ${args[1]} is revoked from user ${args[0]}`, r));
    });

  // ---- role ----
  const role = program.command('role').summary('Role related commands');

  role
    .command('add')
    .summary('Adds a new role')
    .usage('<role name>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'role add command requires role name as its argument');
      const r = await call(cli.client.roleAdd(args[0]));
      out(cli.printer().authChange(`Role ${args[0]} created`, r));
    });

  role
    .command('delete')
    .summary('Deletes a role')
    .usage('<role name>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'role delete command requires role name as its argument');
      const r = await call(cli.client.roleDelete(args[0]));
      out(cli.printer().authChange(`Role ${args[0]} deleted`, r));
    });

  role
    .command('get')
    .summary('Gets detailed information of a role')
    .usage('<role name>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'role get command requires role name as its argument');
      out(cli.printer().roleGet(args[0], await call(cli.client.roleGet(args[0]))));
    });

  role
    .command('list')
    .summary('Lists all roles')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 0) fail(ExitCode.BadArgs, 'role list command requires no arguments');
      out(cli.printer().roleList(await call(cli.client.roleList())));
    });

  role
    .command('grant-permission')
    .summary('Grants a key to a role')
    .usage('[options] <role name> <permission type> <key> [endkey]')
    .argument('[args...]')
    .option('--prefix', 'grant a prefix permission')
    .option('--from-key', 'grant a permission of keys that are greater than or equal to the given key using byte compare')
    .action(async (args: string[], o: { prefix?: boolean; fromKey?: boolean }) => {
      if (args.length < 3) fail(ExitCode.BadArgs, 'role grant command requires role name, permission type, and key [endkey] as its argument');
      const permType = permissionType(args[1]);
      const { key, rangeEnd } = permRange(args.slice(2), o);
      const r = await call(cli.client.roleGrantPermission(args[0], { permType, key, rangeEnd }));
      out(cli.printer().authChange(`Role ${args[0]} updated`, r));
    });

  role
    .command('revoke-permission')
    .summary('Revokes a key from a role')
    .usage('<role name> <key> [endkey]')
    .argument('[args...]')
    .option('--prefix', 'revoke a prefix permission')
    .option('--from-key', 'revoke a permission of keys that are greater than or equal to the given key using byte compare')
    .action(async (args: string[], o: { prefix?: boolean; fromKey?: boolean }) => {
      if (args.length < 2) fail(ExitCode.BadArgs, 'role revoke-permission command requires role name and key [endkey] as its argument');
      const { key, rangeEnd } = permRange(args.slice(1), o);
      const r = await call(cli.client.roleRevokePermission(args[0], key, rangeEnd));
      // etcdctl words it with the key as typed and the computed range end.
      const end = rangeEnd.toString();
      const simple =
        rangeEnd.length === 0
          ? `Permission of key ${args[1]} is revoked from role ${args[0]}`
          : end !== '\x00'
            ? `Permission of range [${args[1]}, ${end}) is revoked from role ${args[0]}`
            : `Permission of range [${args[1]}, <open ended> is revoked from role ${args[0]}`;
      out(cli.printer().authChange(simple, r));
    });

  // ---- auth ----
  const auth = program.command('auth').summary('Enable or disable authentication');

  auth
    .command('enable')
    .summary('Enables authentication')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 0) fail(ExitCode.BadArgs, 'auth enable command does not accept any arguments');
      const c = cli.client;
      // as etcdctl: when root lacks the root role, create it (if needed), grant it and try again.
      for (let attempt = 0; ; attempt++) {
        try {
          await c.authEnable();
          break;
        } catch (err) {
          if (attempt > 2 || !(err instanceof ClientError) || err.message !== ROOT_ROLE_MISSING) return fail(ExitCode.Error, errorText(err));
          errorText(err); // clientv3 logs the failed call before etcdctl handles it
          await call(c.roleAdd('root'));
          await call(c.userGrantRole('root', 'root'));
        }
      }
      out('Authentication Enabled\n');
    });

  auth
    .command('disable')
    .summary('Disables authentication')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 0) fail(ExitCode.BadArgs, 'auth disable command does not accept any arguments');
      await call(cli.client.authDisable());
      out('Authentication Disabled\n');
    });
}
