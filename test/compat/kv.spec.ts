/**
 * etcdctl put / get / del, side by side against real etcd 3.4.23 and nestcd.
 * One fresh server pair for the whole file: every command runs on both in the
 * same order, so revisions in -w json output must match exactly.
 */
import { useCompatServers } from '../support/compat';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('compat: put / get / del', () => {
  const cmp = useCompatServers();

  it('fresh server: get on a missing key prints nothing and exits 0', async () => {
    const r = await cmp.run(['get', 'kv/missing']);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const j = await cmp.run(['get', 'kv/missing', '-w', 'json']);
    // Fresh cluster: revision 1, no kvs, count omitted (0).
    expect(j.stdout).toMatch(/^\{"header":\{"cluster_id":\d+,"member_id":\d+,"revision":1,"raft_term":2\}\}\n$/);
  });

  it('put plain prints OK', async () => {
    const r = await cmp.run(['put', 'kv/a', '1']);
    expect(r).toMatchObject({ code: 0, stdout: 'OK\n', stderr: '' });
  });

  it('put --prev-kv prints OK then the previous key and value', async () => {
    const r = await cmp.run(['put', 'kv/a', '2', '--prev-kv']);
    expect(r).toMatchObject({ code: 0, stdout: 'OK\nkv/a\n1\n' });
    const none = await cmp.run(['put', 'kv/b', 'x', '--prev-kv']);
    expect(none.stdout).toBe('OK\n');
  });

  it('put --prev-kv -w json shows prev_kv with revisions', async () => {
    const r = await cmp.run(['put', 'kv/a', '3', '--prev-kv', '-w', 'json']);
    const j = JSON.parse(r.stdout);
    expect(j.header.revision).toBe(5);
    expect(j.prev_kv).toEqual({ key: b64('kv/a'), create_revision: 2, mod_revision: 3, version: 2, value: b64('2') });
  });

  it('put with the value from stdin (only the key given) stores stdin verbatim', async () => {
    expect((await cmp.run(['put', 'kv/stdin'], { stdin: 'hello\nworld\n' })).stdout).toBe('OK\n');
    const r = await cmp.run(['get', 'kv/stdin', '--print-value-only']);
    expect(r.stdout).toBe('hello\nworld\n\n');
  });

  it('put with no value and empty stdin is a usage error (exit 128)', async () => {
    const r = await cmp.run(['put', 'kv/novalue']);
    expect(r.code).toBe(128);
    expect(r.stderr).toBe('Error: put command needs 1 argument and input from stdin or 2 arguments\n');
  });

  describe('get variants', () => {
    beforeAll(async () => {
      // Creation order c, a, b; then a is updated: distinct CREATE / MODIFY / VERSION / VALUE orders.
      for (const [k, v] of [
        ['g/c', 'v-c'],
        ['g/a', 'v-a'],
        ['g/b', 'v-b'],
        ['g/a', 'zz'],
      ]) {
        await cmp.run(['put', k, v]);
      }
    });

    it('get plain', async () => {
      expect((await cmp.run(['get', 'g/a'])).stdout).toBe('g/a\nzz\n');
    });

    it('get --prefix (KEY order)', async () => {
      expect((await cmp.run(['get', 'g/', '--prefix'])).stdout).toBe('g/a\nzz\ng/b\nv-b\ng/c\nv-c\n');
    });

    it('get key range_end is half-open', async () => {
      expect((await cmp.run(['get', 'g/a', 'g/c'])).stdout).toBe('g/a\nzz\ng/b\nv-b\n');
    });

    it.each([
      ['KEY', 'ASCEND', ['g/a', 'g/b', 'g/c']],
      ['KEY', 'DESCEND', ['g/c', 'g/b', 'g/a']],
      ['CREATE', 'ASCEND', ['g/c', 'g/a', 'g/b']],
      ['CREATE', 'DESCEND', ['g/b', 'g/a', 'g/c']],
      ['MODIFY', 'ASCEND', ['g/c', 'g/b', 'g/a']],
      ['MODIFY', 'DESCEND', ['g/a', 'g/b', 'g/c']],
      ['VERSION', 'ASCEND', ['g/b', 'g/c', 'g/a']],
      // Ties (g/b, g/c both version 1) keep key order in both directions (etcd's sort is
      // stable for small results: Go insertion sort on the key-ordered range).
      ['VERSION', 'DESCEND', ['g/a', 'g/b', 'g/c']],
      ['VALUE', 'ASCEND', ['g/b', 'g/c', 'g/a']],
      ['VALUE', 'DESCEND', ['g/a', 'g/c', 'g/b']],
    ])('get --prefix --sort-by=%s --order=%s', async (by, order, keys) => {
      const r = await cmp.run(['get', 'g/', '--prefix', `--sort-by=${by}`, `--order=${order}`, '--keys-only']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(keys.map((k) => `${k}\n\n`).join(''));
    });

    it('--order without --sort-by sorts by key', async () => {
      const r = await cmp.run(['get', 'g/', '--prefix', '--order=DESCEND', '--keys-only']);
      expect(r.stdout).toBe('g/c\n\ng/b\n\ng/a\n\n');
    });

    it('bad --sort-by / --order: exit 4 (ExitBadFeature)', async () => {
      const a = await cmp.run(['get', 'g/', '--prefix', '--sort-by=bogus']);
      expect(a).toMatchObject({ code: 4, stdout: '', stderr: 'Error: bad sort target bogus\n' });
      const b = await cmp.run(['get', 'g/', '--prefix', '--order=bogus']);
      expect(b).toMatchObject({ code: 4, stdout: '', stderr: 'Error: bad sort order bogus\n' });
    });

    it('get --limit (with -w json: more=true, count = total)', async () => {
      expect((await cmp.run(['get', 'g/', '--prefix', '--limit=2'])).stdout).toBe('g/a\nzz\ng/b\nv-b\n');
      const j = JSON.parse((await cmp.run(['get', 'g/', '--prefix', '--limit=2', '-w', 'json'])).stdout);
      expect(j.more).toBe(true);
      expect(j.count).toBe(3);
      expect(j.kvs).toHaveLength(2);
      const last = await cmp.run(['get', 'g/', '--prefix', '--limit=1', '--sort-by=KEY', '--order=DESCEND']);
      expect(last.stdout).toBe('g/c\nv-c\n');
    });

    it('get --keys-only prints each key followed by an empty line', async () => {
      expect((await cmp.run(['get', 'g/', '--prefix', '--keys-only'])).stdout).toBe('g/a\n\ng/b\n\ng/c\n\n');
    });

    it('get --print-value-only', async () => {
      expect((await cmp.run(['get', 'g/', '--prefix', '--print-value-only'])).stdout).toBe('zz\nv-b\nv-c\n');
    });

    it('get --from-key', async () => {
      const r = await cmp.run(['get', 'g/b', '--from-key', '--limit=3']);
      expect(r.stdout).toBe('g/b\nv-b\ng/c\nv-c\nkv/a\n3\n');
    });

    it('--prefix with --from-key is rejected by etcdctl (exit 128)', async () => {
      const r = await cmp.run(['get', 'g/', '--prefix', '--from-key']);
      expect(r).toMatchObject({
        code: 128,
        stderr: 'Error: `--prefix` and `--from-key` cannot be set at the same time, choose one\n',
      });
    });

    it('--count-only does not exist in etcdctl 3.4 (unknown flag, usage on stdout, exit 1)', async () => {
      const r = await cmp.run(['get', 'g/', '--prefix', '--count-only']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('Error: unknown flag: --count-only\n\nError: unknown flag: --count-only\n');
      expect(r.stdout).toMatch(/^NAME:\n\tget - Gets the key or a range of keys\n/);
    });

    it('get -w json: base64 keys/values, revisions, count', async () => {
      const r = await cmp.run(['get', 'g/', '--prefix', '-w', 'json']);
      const j = JSON.parse(r.stdout);
      expect(j.kvs).toEqual([
        { key: b64('g/a'), create_revision: 8, mod_revision: 10, version: 2, value: b64('zz') },
        { key: b64('g/b'), create_revision: 9, mod_revision: 9, version: 1, value: b64('v-b') },
        { key: b64('g/c'), create_revision: 7, mod_revision: 7, version: 1, value: b64('v-c') },
      ]);
      expect(j.count).toBe(3);
      expect(j.more).toBeUndefined();
      expect(j.header.revision).toBe(10);
    });

    it('get -w fields', async () => {
      const r = await cmp.run(['get', 'g/a', '-w', 'fields']);
      expect(r.stdout).toMatch(
        /^"ClusterID" : \d+\n"MemberID" : \d+\n"Revision" : 10\n"RaftTerm" : 2\n"Key" : "g\/a"\n"CreateRevision" : 8\n"ModRevision" : 10\n"Version" : 2\n"Value" : "zz"\n"Lease" : 0\n"More" : false\n"Count" : 1\n$/,
      );
    });

    it('get --rev shows history; future revision fails', async () => {
      expect((await cmp.run(['get', 'g/a', '--rev=8'])).stdout).toBe('g/a\nv-a\n');
      expect((await cmp.run(['get', 'g/a', '--rev=7'])).stdout).toBe('');
      const f = await cmp.run(['get', 'g/a', '--rev=1000']);
      expect(f.code).toBe(1);
      expect(f.stdout).toBe('');
      expect(f.stderr).toContain(
        '"error":"rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision is a future revision"',
      );
      expect(f.stderr).toMatch(/\nError: etcdserver: mvcc: required revision is a future revision\n$/);
    });
  });

  describe('del', () => {
    beforeAll(async () => {
      for (const k of ['d/1', 'd/2', 'd/3', 'd/x']) await cmp.run(['put', k, `val-${k}`]);
    });

    it('del plain prints the number deleted', async () => {
      expect((await cmp.run(['del', 'd/x'])).stdout).toBe('1\n');
      expect((await cmp.run(['del', 'd/x'])).stdout).toBe('0\n');
    });

    it('del --prev-kv prints count then the deleted pairs', async () => {
      const r = await cmp.run(['del', 'd/1', '--prev-kv']);
      expect(r.stdout).toBe('1\nd/1\nval-d/1\n');
    });

    it('del --prefix --prev-kv -w json', async () => {
      const r = await cmp.run(['del', 'd/', '--prefix', '--prev-kv', '-w', 'json']);
      const j = JSON.parse(r.stdout);
      expect(j.deleted).toBe(2);
      expect(j.prev_kvs.map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString())).toEqual(['d/2', 'd/3']);
      expect((await cmp.run(['get', 'd/', '--prefix'])).stdout).toBe('');
    });

    it('del --prefix of nothing', async () => {
      expect((await cmp.run(['del', 'd/', '--prefix'])).stdout).toBe('0\n');
      const j = JSON.parse((await cmp.run(['del', 'd/', '--prefix', '-w', 'json'])).stdout);
      expect(j.deleted).toBeUndefined(); // 0 is omitted
    });
  });
});
