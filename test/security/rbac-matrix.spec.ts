/**
 * The RBAC matrix: for each kind of role permission (none, read, write, readwrite on a prefix, readwrite on one
 * key, root) and each operation (range, put, delete, txn with mixed ops, watch, lease grant/revoke, member,
 * maintenance and auth calls), the same etcdctl command against a real etcd 3.4 and against nestcd set up the
 * same way must give the same result (exit code, output and error, normalized for IDs and ports).
 */
import { EtcdctlResult, Target, useCompatServers } from '../support';

jest.setTimeout(120_000);

const ROOT = ['--user=root:rootpw'];

/** Users and what they hold (all with password pw). */
const USERS: Array<{ name: string; flags: string[]; ownRole?: string }> = [
  { name: 'no user', flags: [] },
  { name: 'wrong password', flags: ['--user=u-rw:wrong'] },
  { name: 'unknown user', flags: ['--user=nobody:pw'] },
  { name: 'u-none', flags: ['--user=u-none:pw'] },
  { name: 'u-read', flags: ['--user=u-read:pw'], ownRole: 'r-read' },
  { name: 'u-write', flags: ['--user=u-write:pw'], ownRole: 'r-write' },
  { name: 'u-rw', flags: ['--user=u-rw:pw'], ownRole: 'r-rw' },
  { name: 'u-key', flags: ['--user=u-key:pw'], ownRole: 'r-key' },
  { name: 'root', flags: ROOT, ownRole: 'root' },
];

const SETUP: string[][] = [
  ['put', 'k/a', 'v0'], ['put', 'k/b', 'v0'], ['put', 'other', 'o0'],
  ['role', 'add', 'root'], ['user', 'add', 'root:rootpw'], ['user', 'grant-role', 'root', 'root'],
  ['role', 'add', 'r-read'], ['role', 'grant-permission', '--prefix=true', 'r-read', 'read', 'k/'],
  ['role', 'add', 'r-write'], ['role', 'grant-permission', '--prefix=true', 'r-write', 'write', 'k/'],
  ['role', 'add', 'r-rw'], ['role', 'grant-permission', '--prefix=true', 'r-rw', 'readwrite', 'k/'],
  ['role', 'add', 'r-key'], ['role', 'grant-permission', 'r-key', 'readwrite', 'k/a'],
  ['user', 'add', 'u-none:pw'],
  ['user', 'add', 'u-read:pw'], ['user', 'grant-role', 'u-read', 'r-read'],
  ['user', 'add', 'u-write:pw'], ['user', 'grant-role', 'u-write', 'r-write'],
  ['user', 'add', 'u-rw:pw'], ['user', 'grant-role', 'u-rw', 'r-rw'],
  ['user', 'add', 'u-key:pw'], ['user', 'grant-role', 'u-key', 'r-key'],
  ['auth', 'enable'],
];

type Observed = Record<string, { code: number | null; stdout: string; stderr: string } | string>;

const short = (r: EtcdctlResult) => ({ code: r.code, stdout: r.stdout, stderr: r.stderr });

/** Every operation of the matrix as `user`; root restores the keys first so each user starts from the same data. */
async function matrixRow(t: Target, user: (typeof USERS)[number]): Promise<Observed> {
  const { ctl } = t;
  const as = (args: string[], stdin?: string) => ctl.run([...user.flags, ...args], { stdin });
  const out: Observed = {};
  const record = async (label: string, args: string[], stdin?: string) => (out[label] = short(await as(args, stdin)));
  if (user.name === 'wrong password' || user.name === 'unknown user') {
    // etcdctl stops at authentication, whatever the command: a few are enough
    for (const args of [['get', 'k/a'], ['put', 'k/a', 'x'], ['user', 'list'], ['watch', 'k/a']]) await record(args.join(' '), args);
    return out;
  }

  for (const args of [['put', 'k/a', 'v0'], ['put', 'k/b', 'v0'], ['put', 'other', 'o0']]) await ctl.ok([...ROOT, ...args]);

  await record('range key', ['get', 'k/a']);
  await record('range prefix', ['get', 'k/', '--prefix']);
  await record('range other key', ['get', 'other']);
  await record('range everything', ['get', '', '--from-key', '--keys-only']);
  await record('put key', ['put', 'k/a', 'v1']);
  await record('put --prev-kv', ['put', 'k/a', 'v2', '--prev-kv']);
  await record('put other', ['put', 'other', 'x']);
  await record('delete key', ['del', 'k/b']);
  await record('delete prefix --prev-kv', ['del', 'k/', '--prefix', '--prev-kv']);
  await ctl.ok([...ROOT, 'put', 'k/a', 'v0']);
  await ctl.ok([...ROOT, 'put', 'k/b', 'v0']);
  await record('txn mixed ops in k/', ['txn'], 'value("k/a") = "v0"\n\nput k/b t1\nget k/a\n\nget k/b\n\n');
  await record('txn reading outside k/', ['txn'], 'value("k/a") = "v0"\n\nget other\n\n\n');
  await record('txn compare outside k/', ['txn'], 'value("other") = "o0"\n\nget k/a\n\n\n');
  await record('txn writing outside k/ in failure branch', ['txn'], 'value("k/a") = "v0"\n\nget k/a\n\nput other y\n\n');

  // watch: refused watchers are cancelled by the server; allowed ones see root's put
  // (from the next revision on, so the event is seen however long the watcher takes to start)
  const next = Number(/"revision":(\d+)/.exec(await ctl.ok([...ROOT, 'get', 'k/a', '-w', 'json']))![1]) + 1;
  const watcher = ctl.spawn([...user.flags, 'watch', 'k/a', `--rev=${next}`]);
  await ctl.ok([...ROOT, 'put', 'k/a', 'watched']);
  await watcher.waitFor(/watched/, 5000).catch(() => undefined);
  const selfExited = !watcher.isRunning();
  const w = selfExited ? await watcher.exited() : await watcher.stop();
  out['watch key'] = `${selfExited ? `exited ${w.code}` : 'running'}\n${w.stdout}\n${w.stderr.replace(/^\{"level".*\n/gm, '')}`;

  // lease revoke: a lease holding k/c (in every k/ role's range) and one holding "other" (root's only)
  const inPrefix = await ctl.grantLease(300);
  await ctl.ok([...ROOT, 'put', 'k/c', 'leased', `--lease=${inPrefix}`]);
  const outside = await ctl.grantLease(300);
  await ctl.ok([...ROOT, 'put', 'other', 'leased', `--lease=${outside}`]);
  await record('lease grant', ['lease', 'grant', '100']);
  await record('lease revoke (keys in k/)', ['lease', 'revoke', inPrefix]);
  await record('lease revoke (key outside k/)', ['lease', 'revoke', outside]);
  await record('put with a lease holding keys outside k/', ['put', 'k/a', 'v3', `--lease=${outside}`]);
  // whatever the user could not revoke goes now
  await ctl.run([...ROOT, 'lease', 'revoke', inPrefix]);
  await ctl.run([...ROOT, 'lease', 'revoke', outside]);

  await record('member list', ['member', 'list']);
  if (user.name !== 'root') {
    // root's member changes belong to the cluster tests (they would change the reference cluster)
    await record('member add', ['member', 'add', 'x', '--peer-urls=http://127.0.0.1:1']);
    await record('member remove', ['member', 'remove', '1234']);
  }
  await record('alarm list', ['alarm', 'list']);
  await record('defrag', ['defrag']);
  out['endpoint hashkv (exit code)'] = String((await as(['endpoint', 'hashkv'])).code);
  await record('user list', ['user', 'list']);
  await record('role list', ['role', 'list']);
  await record('user get self', ['user', 'get', user.name]);
  await record('role get own role', ['role', 'get', user.ownRole ?? 'r-read']);
  await record('role get other role', ['role', 'get', 'r-key']);
  await record('user add', ['user', 'add', 'zz:pw']);
  await record('role add', ['role', 'add', 'zz']);
  await record('role grant-permission', ['role', 'grant-permission', 'r-key', 'read', 'k/z']);
  await record('user grant-role', ['user', 'grant-role', 'u-none', 'r-read']);
  await record('user passwd', ['user', 'passwd', 'u-none', '--interactive=false'], 'pw\n');
  await record('compaction', ['compaction', '2']);
  if (user.name !== 'root') await record('auth disable', ['auth', 'disable']);
  return out;
}

describe('security: RBAC matrix (etcd vs nestcd, same etcdctl commands)', () => {
  const cmp = useCompatServers();

  beforeAll(async () => {
    await cmp.scenario(async ({ ctl }) => {
      const outputs: string[] = [];
      for (const args of SETUP) outputs.push(await ctl.ok(args));
      return outputs;
    });
  });

  it.each(USERS.map((u) => [u.name, u] as const))('%s', async (_name, user) => {
    await cmp.scenario((t) => matrixRow(t, user), { label: user.name });
  });

  it('auth disable by root, then everything is open again', async () => {
    expect((await cmp.run([...ROOT, 'auth', 'disable'])).stdout).toBe('Authentication Disabled\n');
    expect((await cmp.run(['get', 'k/a'])).code).toBe(0);
    expect((await cmp.run(['user', 'list'])).stdout).toBe('root\nu-key\nu-none\nu-read\nu-rw\nu-write\nzz\n');
  });
});
