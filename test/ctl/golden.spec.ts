/**
 * nestcdctl against the real etcdctl 3.4, command by command: same output (normalised) and exit code, against
 * real etcd 3.4 and against nestcd (twin servers per tool; see golden.ts).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/processes';
import { useGolden } from './golden';

jest.setTimeout(180000);

// `npm test` compares every command and error case in the formats etcdctl users use most; GOLDEN_FULL=1
// (npm run test:ctl) adds every -w format of every command (a few minutes on a loaded machine).
const FULL = process.env.GOLDEN_FULL === '1';
const formats = (all: string[], core: string[]) => (FULL ? all : core);

const g = useGolden();

describe('nestcdctl golden: kv', () => {
  it('put / get / del in every output format, --hex, stdin value, sort, limit, rev', async () => {
    const r = await g.scenario('kv', async (t) => {
      await t.run(['put', 'k1', 'v1']);
      await t.run(['put', 'k1', 'v2', '--prev-kv']);
      await t.run(['put', 'k1', 'v3', '--prev-kv', '-w', 'json']);
      await t.run(['put', 'k2'], { stdin: 'from stdin\n' });
      await t.run(['put', 'k3', 'a "quoted"\tvalue', '-w', 'fields']);
      await t.run(['get', 'k1']);
      await t.run(['get', 'k1', '-w', 'json']);
      await t.run(['get', 'k', '--prefix', '-w', 'fields']);
      await t.run(['get', 'k1', '-w', 'table']);
      await t.run(['--hex', 'get', 'k1']);
      await t.run(['get', 'k', '--prefix', '--keys-only']);
      if (FULL) await t.run(['get', 'k', '--prefix', '--print-value-only']);
      await t.run(['get', '', '--from-key', '--limit=1', '-w', 'json']);
      await t.run(['get', 'k1', 'k9', '--sort-by=VALUE', '--order=DESCEND']);
      await t.run(['get', 'k1', '--rev=2', '--consistency=s']);
      if (FULL) await t.run(['get', 'missing']);
      if (FULL) await t.run(['del', 'k2', '--prev-kv', '-w', 'fields']);
      await t.run(['del', 'k', '--prefix', '-w', 'json']);
      if (FULL) await t.run(['del', 'missing']);
    });
    expect(r[0].stdout).toBe('OK\n');
    expect(r[5].stdout).toBe('k1\nv3\n');
    expect(r[8]).toMatchObject({ code: 4, stderr: 'Error: table not supported as output format\n' });
    expect(r[9].stdout).toBe('\\x6b\\x31\n\\x76\\x33\n');
  });

  it('txn from stdin (success, failure, nested formats), interactive prompts, bad syntax', async () => {
    const r = await g.scenario('txn', async (t) => {
      await t.setup(['put', 'tk', 'v']);
      const body = 'value("tk") = "v"\nmod("tk") > "0"\n\nput tk v2 --prev-kv\nget tk\ndel nothing\n\nput tk v3\n\n';
      await t.run(['txn'], { stdin: body });
      for (const w of formats(['json', 'fields', 'table'], ['json', 'table'])) await t.run(['txn', '-w', w], { stdin: body });
      await t.run(['txn'], { stdin: 'version("tk") < "1"\n\nput tk x\n\nput tk v4\nget tk --prefix\n\n' });
      await t.run(['txn', '-i'], { stdin: 'create("tk") != "0"\n\nget tk\n\n\n' });
      await t.run(['txn'], { stdin: 'bad syntax\n\n' });
      await t.run(['txn'], { stdin: 'version("tk") = "x"\n\n\n\n' });
      await t.run(['txn'], { stdin: 'mod("tk") > "0"\n\nputt tk v2\n\n' });
      await t.run(['txn'], { stdin: 'mod("tk") > "0"\n\nput tk v\n' });
      await t.run(['txn', 'extra']);
    });
    expect(r[0].stdout).toBe('SUCCESS\n\nOK\ntk\nv\n\ntk\nv2\n\n0\n');
    expect(r.slice(-5).map((x) => [x.code, x.stderr])).toEqual([
      [3, 'Error: malformed comparison: bad syntax\n'],
      [3, 'Error: invalid txn compare request: version("tk") = "x"\n'],
      [3, 'Error: invalid txn request: putt tk v2\n'],
      [3, 'Error: EOF\n'],
      [128, 'Error: txn command does not accept argument\n'],
    ]);
  });

  it('compaction, compacted and future revisions', async () => {
    await g.scenario('compaction', async (t) => {
      for (const v of ['1', '2', '3']) await t.setup(['put', 'ck', v]);
      await t.run(['compaction', '3']);
      await t.run(['get', 'ck', '--rev=2']);
      if (FULL) await t.run(['compaction', '2']);
      await t.run(['compaction', '1000']);
      await t.run(['compaction', '--physical', '4']);
      await t.run(['compaction', 'x']);
      if (FULL) await t.run(['compaction']);
    });
  });
});

describe('nestcdctl golden: watch', () => {
  it('replays history with --rev in every format, --prev-kv, --prefix, runs `-- command`, -i, compacted', async () => {
    await g.scenario('watch', async (t) => {
      const rev = Number(/"revision":(\d+)/.exec((await t.setup(['get', 'x', '-w', 'json'])).stdout)![1]);
      await t.setup(['put', 'w/a', '1']);
      await t.setup(['put', 'w/a', '2']);
      await t.setup(['del', 'w/a']);
      const last = /^DELETE\n(?:.*\n){2,5}/m;
      for (const w of formats(['simple', 'json', 'fields'], ['simple', 'json'])) {
        const stopOn = w === 'json' ? /"type":1/ : w === 'fields' ? /DELETE(?:.*\n){5,}"Lease" : 0\n/ : last;
        await t.run(['watch', 'w/a', '--prev-kv', `--rev=${rev + 1}`, '-w', w], { stopWhen: { waitFor: stopOn }, timeoutMs: 15000 });
      }
      await t.run(['watch', 'w/', '--prefix', `--rev=${rev + 1}`, '--', 'sh', '-c', 'echo "$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_REVISION"'], {
        stopWhen: { waitFor: /"DELETE" "w\/a" "" \d+\n/ },
        timeoutMs: 15000,
      });
      await t.run(['watch', '-i'], { stdin: `watch w/a --rev=${rev + 1}\n` });
      await t.run(['watch']);
      await t.setup(['compaction', String(rev + 2)]);
      await t.run(['watch', 'w/a', `--rev=${rev + 1}`]);
    });
  });
});

describe('nestcdctl golden: cluster and maintenance', () => {
  it('member list, endpoint status / health / hashkv (also --cluster), alarm, defrag in every format', async () => {
    await g.scenario('maintenance', async (t) => {
      await t.setup(['put', 'mk', 'v']);
      const all = ['simple', 'json', 'fields', 'table'];
      for (const w of formats(all, ['simple', 'table'])) await t.run(['member', 'list', '-w', w]);
      for (const w of formats(all, ['json', 'table'])) await t.run(['endpoint', 'status', '-w', w]);
      for (const w of formats(all, ['fields'])) await t.run(['endpoint', 'hashkv', '-w', w]);
      for (const w of formats(all, ['simple'])) await t.run(['endpoint', 'health', '-w', w]);
      await t.run(['endpoint', 'status', '--cluster']);
      if (FULL) await t.run(['endpoint', 'health', '--cluster', '-w', 'json']);
      await t.run(['alarm', 'list', '-w', 'json']);
      if (FULL) await t.run(['alarm', 'disarm']);
      await t.run(['defrag', '--cluster']);
      await t.run(['member', 'remove', 'zz']);
      if (FULL) await t.run(['member', 'remove', '1']);
      await t.run(['member', 'add', 'x']);
      await t.run(['move-leader']);
    });
  });

  it('snapshot save writes the backend, refuses several endpoints', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nestcdctl-snap-'));
    try {
      await g.scenario('snapshot', async (t) => {
        const file = join(dir, `${t.kind}-${t.tool}.db`);
        // etcdctl logs its progress with zap on stderr; the result line and exit code are compared.
        const r = await t.run(['snapshot', 'save', file], { compare: ['stdout'] });
        if (r.code === 0) expect(statSync(file).size).toBeGreaterThan(0);
        await t.run(['snapshot', 'save'], { compare: ['stdout', 'stderr'] });
        await t.run(['snapshot', 'save', join(dir, 'x.db')], { endpoints: `${t.server.endpoint},${t.server.endpoint}` });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('nestcdctl golden: lease', () => {
  it('grant, timetolive --keys, list, keep-alive --once, revoke in every format; bad and unknown IDs', async () => {
    await g.scenario('lease', async (t) => {
      const id = /lease ([0-9a-f]+) granted/.exec((await t.run(['lease', 'grant', '100'])).stdout)![1];
      await t.run(['lease', 'grant', '50', '-w', 'json']);
      if (FULL) await t.run(['lease', 'grant', '50', '-w', 'fields']);
      await t.run(['put', 'lk', 'v', `--lease=${id}`]);
      for (const w of formats(['simple', 'json', 'fields'], ['simple', 'json'])) await t.run(['lease', 'timetolive', id, '--keys', '-w', w], { mask: [/"TTL" : \d+/g] });
      if (FULL) await t.run(['lease', 'timetolive', id]);
      await t.run(['lease', 'list']);
      if (FULL) await t.run(['lease', 'list', '-w', 'json']);
      await t.run(['lease', 'keep-alive', '--once', id]);
      if (FULL) await t.run(['lease', 'keep-alive', '--once', id, '-w', 'json']);
      await t.run(['lease', 'revoke', id]);
      await t.run(['get', 'lk']);
      if (FULL) await t.run(['lease', 'revoke', id]);
      await t.run(['lease', 'keep-alive', '--once', id]);
      await t.run(['lease', 'timetolive', id]);
      await t.run(['lease', 'timetolive', 'zz']);
      await t.run(['lease', 'grant', 'x']);
      if (FULL) await t.run(['lease', 'grant']);
      await t.run(['put', 'k', 'v', '--lease=zz']);
      if (FULL) await t.run(['put', 'k', 'v', '--lease=1234']);
    });
  });

  it('keep-alive renews until stopped', async () => {
    await g.scenario('keep-alive', async (t) => {
      const id = /lease ([0-9a-f]+) granted/.exec((await t.setup(['lease', 'grant', '10'])).stdout)![1];
      await t.run(['lease', 'keep-alive', id], { stopWhen: { waitFor: /keepalived.*\n/ }, timeoutMs: 15000 });
    });
  });
});

describe('nestcdctl golden: member changes and move-leader on real etcd', () => {
  // nestcd's member add/remove/update/promote and move-leader are being built; these run against etcd for now.
  const etcdOnly = useGolden(['etcd']);

  it('member add (learner), update, promote (not in sync), remove; move-leader to itself', async () => {
    const peer = `http://127.0.0.1:${await freePort()}`;
    const peer2 = `http://127.0.0.1:${await freePort()}`;
    await etcdOnly.scenario('members', async (t) => {
      await t.run(['member', 'add', 'newbie', '--learner', `--peer-urls=${peer}`], { sortLines: true });
      const list = (await t.run(['member', 'list'], { sortLines: true })).stdout;
      const learner = /^([0-9a-f]+), unstarted, , /m.exec(list)![1];
      await t.run(['member', 'list', '-w', 'table'], { sortLines: true });
      await t.run(['member', 'update', learner, `--peer-urls=${peer2}`]);
      await t.run(['member', 'update', learner]);
      await t.run(['member', 'promote', learner]);
      await t.run(['member', 'remove', learner, '-w', 'json']);
      await t.run(['member', 'list'], { sortLines: true });
      const self = /^([0-9a-f]+), started/m.exec(list)![1];
      await t.run(['move-leader', self]);
    });
  });
});

describe('nestcdctl golden: lock and elect', () => {
  it('lock prints its key and releases on SIGTERM; lock -- command gets ETCD_LOCK_KEY; elect; bad args', async () => {
    await g.scenario(
      'lock',
      async (t) => {
        await t.run(['lock', 'L'], { stopWhen: { waitFor: /^L\/.+\n/ }, timeoutMs: 20000 });
        await t.run(['lock', 'L', 'sh', '-c', 'echo "$ETCD_LOCK_KEY"'], { compare: ['stderr'] });
        await t.run(['lock', 'L', '--', 'sh', '-c', 'echo "$ETCD_LOCK_KEY"']);
        await t.run(['get', 'L', '--prefix']);
        await t.run(['lock']);
        await t.run(['elect', 'E', 'p1'], { stopWhen: { waitFor: /p1\n/ }, timeoutMs: 20000 });
        await t.run(['elect', 'E']);
        await t.run(['elect']);
      },
      { normalize: { lockNames: ['L', 'E'] } },
    );
  });
});

describe('nestcdctl golden: bad input and global flags', () => {
  it('unknown flags and commands, missing args, unreachable endpoint, ETCDCTL_* variables', async () => {
    const closed = await freePort();
    await g.scenario('bad input', async (t) => {
      // etcdctl prints the command's usage on stdout after an unknown flag; the error and exit code are compared.
      await t.run(['get', 'k', '--foo'], { compare: ['stderr'] });
      await t.run(['get', 'k', '--limit=abc'], { compare: ['stderr'] });
      await t.run(['bogus']);
      await t.run(['get']);
      if (FULL) await t.run(['del']);
      await t.run(['put']);
      await t.run(['get', 'k', '--sort-by=foo']);
      if (FULL) await t.run(['get', 'k', '--order=sideways']);
      await t.run(['get', 'k', '--consistency=x']);
      if (FULL) await t.run(['get', 'k', '--prefix', '--from-key']);
      await t.run(['get', 'a', 'b', '--prefix']);
      await t.run(['--command-timeout=1s', '--dial-timeout=300ms', 'get', 'k'], { endpoints: `127.0.0.1:${closed}` });
      await t.run(['--command-timeout=1s', '--dial-timeout=300ms', 'endpoint', 'health'], { endpoints: `127.0.0.1:${closed}` });
      await t.run(['put', 'ek', 'ev'], { env: { ETCDCTL_WRITE_OUT: 'json' } });
      if (FULL) await t.run(['get', 'ek'], { env: { ETCDCTL_HEX: 'true' } });
      await t.run(['get', 'ek'], { env: { ETCDCTL_ENDPOINTS: t.server.endpoint }, endpoints: t.server.endpoint });
      await t.run(['get', 'ek', '-w', 'fields'], { env: { ETCDCTL_ENDPOINTS: t.server.endpoint }, endpoints: '' });
      await t.run(['get', 'ek', '--prefix=true', '--keys-only=false']);
    });
  });
});

// Last in the file: it turns auth on (and off again) on the shared twins.
describe('nestcdctl golden: auth', () => {
  it('users, roles, permissions (--prefix, --from-key, ranges), auth enable/disable, --user allowed/denied/wrong password', async () => {
    const root = '--user=root:rootpw';
    const r = await g.scenario('auth', async (t) => {
      try {
        await t.run(['user', 'add', 'root:rootpw']);
        await t.run(['user', 'add', 'alice', '--interactive=false'], { stdin: 'pw\n' });
        // etcdctl asks twice from the terminal (stty complains on a pipe) and refuses different answers.
        await t.run(['user', 'add', 'bob'], { stdin: 'x\ny\n' });
        await t.run(['user', 'add', 'carol:c', '-w', 'json']);
        await t.run(['user', 'add', 'dave', '--no-password', '-w', 'fields']);
        if (FULL) await t.run(['user', 'get', 'alice']);
        await t.run(['user', 'list', '-w', 'json']);
        await t.run(['role', 'add', 'r1']);
        if (FULL) await t.run(['role', 'add', 'r1']);
        await t.run(['role', 'grant-permission', 'r1', 'readwrite', '--prefix', 'a/']);
        await t.run(['role', 'grant-permission', 'r1', 'read', 'b', 'd']);
        await t.run(['role', 'grant-permission', 'r1', 'write', '--from-key', 'z', '-w', 'json']);
        await t.run(['role', 'grant-permission', 'r1', 'bogus', 'k']);
        await t.run(['role', 'grant-permission', 'r1', 'read', 'a', 'b', '--prefix']);
        await t.run(['role', 'get', 'r1']);
        await t.run(['role', 'get', 'r1', '-w', 'fields']);
        if (FULL) await t.run(['role', 'get', 'r1', '-w', 'json']);
        if (FULL) await t.run(['role', 'list']);
        await t.run(['user', 'grant-role', 'alice', 'r1']);
        await t.run(['user', 'grant-role', 'alice', 'nope']);
        await t.run(['user', 'get', 'alice', '--detail', '-w', 'json']);
        if (FULL) await t.run(['user', 'get', 'alice', '--detail']);
        // no root role yet: etcdctl creates it, grants it to root and enables auth.
        await t.run(['auth', 'enable']);
        await t.run(['user', 'list']);
        await t.run(['--user=alice:pw', 'put', 'a/1', 'v']);
        await t.run(['--user=alice:pw', 'get', 'a/1']);
        await t.run(['--user=alice:pw', 'put', 'b', 'v']);
        await t.run(['--user=alice:pw', 'get', 'x']);
        await t.run(['--user=alice:wrong', 'get', 'a/1']);
        // --user without a password: asked on the terminal.
        await t.run(['--user=alice', 'get', 'a/1'], { stdin: 'pw\n' });
        await t.run([root, 'role', 'revoke-permission', 'r1', '--prefix', 'a/']);
        if (FULL) await t.run([root, 'role', 'revoke-permission', 'r1', 'b', 'd']);
        await t.run([root, 'role', 'revoke-permission', 'r1', 'nothing']);
        await t.run(['--user=alice:pw', 'get', 'a/1']);
        await t.run([root, 'user', 'revoke-role', 'alice', 'r1']);
        await t.run(['--user=alice:pw', 'auth', 'disable']);
        await t.run([root, 'auth', 'disable']);
        await t.run(['user', 'passwd', 'alice', '--interactive=false'], { stdin: 'pw2\n' });
        await t.run(['user', 'delete', 'alice']);
        await t.run(['user', 'delete', 'alice']);
        await t.run(['role', 'delete', 'r1', '-w', 'json']);
        await t.run(['role', 'list', '-w', 'fields']);
      } finally {
        await t.setup([root, 'auth', 'disable']);
      }
    });
    const byArgs = (args: string) => r.find((x) => x.args.join(' ') === args)!;
    expect(byArgs('user add root:rootpw')).toMatchObject({ code: 0, stdout: 'User root created\n' });
    expect(byArgs('user add bob')).toMatchObject({ code: 128, stdout: 'Password of bob: \nType password of bob again for confirmation: \n' });
    expect(byArgs('role get r1').stdout).toBe('Role r1\nKV Read:\n\t[a/, a0) (prefix a/)\n\t[b, d)\nKV Write:\n\t[a/, a0) (prefix a/)\n\t[z, <open ended>\n');
    expect(byArgs('auth enable')).toMatchObject({ code: 0, stdout: 'Authentication Enabled\n' });
    expect(byArgs('--user=alice:pw get a/1')).toMatchObject({ code: 0, stdout: 'a/1\nv\n' });
    expect(byArgs('--user=alice:pw put b v')).toMatchObject({ code: 1 });
    expect(byArgs('--user=alice:pw put b v').stderr).toMatch(/Error: etcdserver: permission denied\n$/);
    expect(byArgs('--user=alice:wrong get a/1')).toMatchObject({ code: 2 });
    expect(byArgs('--user=alice get a/1')).toMatchObject({ code: 0, stdout: 'Password: \na/1\nv\n' });
    expect(byArgs(`${root} auth disable`)).toMatchObject({ code: 0, stdout: 'Authentication Disabled\n' });
  });
});
