// The classic v2 etcdctl (ETCDCTL_API=2) against nestcd and the real etcd side by side: output and exit codes.
import { etcdctl, EtcdctlOptions, spawnEtcdctl } from '../support';
import { httpRequest, normalizeText, Side, startSides } from './http-support';

jest.setTimeout(90_000);

const V2 = { env: { ETCDCTL_API: '2' } } satisfies EtcdctlOptions;

/** etcdctl prints v2 indexes in several places; shift them by the side's base, mask IDs, TTLs and times. */
function normalizeOutput(text: string, side: Side): string {
  const shift = (n: string) => String(Number(n) - side.v2Base);
  return normalizeText(text, side)
    .replace(/\[(\d+)\]$/gm, (_m, n: string) => `[${shift(n)}]`)
    .replace(/^((?:Created-|Modified-)?Index: )(\d+)$/gm, (_m, p: string, n: string) => p + shift(n))
    .replace(/"(createdIndex|modifiedIndex)":(\d+)/g, (_m, k: string, n: string) => `"${k}":${shift(n)}`)
    .replace(/^TTL: \d+$/gm, 'TTL: <TTL>')
    .replace(/"ttl":\d+/g, '"ttl":<TTL>')
    .replace(/"expiration":"[^"]+"/g, '"expiration":"<TIME>"')
    .replace(/\b[0-9a-f]{14,16}\b/g, '<ID>');
}

describe('etcdctl v2 commands, side by side with etcd', () => {
  let sides: Side[] = [];
  beforeAll(async () => {
    sides = await startSides(['--enable-v2']);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(sides.map((s) => s.server.stop()));
  });

  /** Runs the command on every side in turn; expects the same normalised stdout, stderr and exit code. */
  const run = (...args: string[]) => runAs(false, args);
  /** etcd lists a directory in Go's map order unless asked to sort: compare those listings as sets. */
  const runUnordered = (...args: string[]) => runAs(true, args);
  const runAs = async (unordered: boolean, args: string[]) => {
    const results = [];
    for (const s of sides) {
      const r = await etcdctl(s.server.endpoint, args, V2);
      let stdout = normalizeOutput(r.stdout, s);
      if (unordered) stdout = stdout.split('\n').sort().join('\n');
      results.push({ code: r.code, stdout, stderr: normalizeOutput(r.stderr, s) });
    }
    expect({ args, nestcd: results[1] }).toEqual({ args, nestcd: results[0] });
    return results[0];
  };

  it('set, get, update, mk, mkdir, setdir, updatedir, rm, rmdir, ls', async () => {
    expect(await run('set', '/a/b', '1')).toEqual({ code: 0, stdout: '1\n', stderr: '' });
    await run('get', '/a/b');
    await run('update', '/a/b', '2');
    await run('update', '/nope', '2');
    const mk = await run('mk', '/a/b', '3');
    expect(mk.code).toBe(4);
    expect(mk.stderr).toMatch(/^Error: {2}105: Key already exists \(\/a\/b\) \[\d+\]/);
    await run('mk', '/a/c', '3');
    await run('mkdir', '/m');
    await run('mkdir', '/m');
    await run('setdir', '/s');
    await run('updatedir', '/s');
    await run('set', '/m/x/y', 'deep');
    await runUnordered('ls');
    await runUnordered('ls', '--recursive', '-p', '/');
    await run('ls', '--sort', '--recursive', '-p', '/');
    await run('ls', '--sort', '--recursive', '/m');
    await run('get', '/m');
    await run('rm', '/a/b');
    await run('rm', '/a/b');
    await run('rmdir', '/s');
    await run('rmdir', '/m');
    await run('rm', '--recursive', '/m');
    await run('get', '/nope');
  });

  it('set --ttl (the key expires), mk --in-order, swap-with-value, rm --with-value, -o extended and json', async () => {
    await run('set', '--ttl', '100', '/t', 'x');
    await run('-o', 'extended', 'get', '/t');
    await run('-o', 'json', 'get', '/t');
    await run('-o', 'extended', 'set', '/t2', 'y');
    await run('-o', 'json', 'set', '/t2', 'z');
    await run('mk', '--in-order', '/q', 'job1');
    await run('mk', '--in-order', '/q', 'job2');
    await run('ls', '--sort', '/q');
    await run('set', '--swap-with-value', 'wrong', '/t2', 'n');
    await run('set', '--swap-with-value', 'z', '/t2', 'n');
    await run('rm', '--with-value', 'wrong', '/t2');
    await run('rm', '--with-value', 'n', '/t2');
    await run('set', '--ttl', '1', '/short', 'v');
    for (const s of sides) {
      const deadline = Date.now() + 10_000;
      let code = 0;
      while (code === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        code = (await etcdctl(s.server.endpoint, ['get', '/short'], V2)).code ?? 0;
      }
      expect({ side: s.kind, code }).toEqual({ side: s.kind, code: 4 });
    }
  });

  it('member list and cluster-health', async () => {
    const list = await run('member', 'list');
    expect(list.stdout).toMatch(/^<ID>: name=ref peerURLs=http:\/\/127\.0\.0\.1:<PORT> clientURLs=http:\/\/127\.0\.0\.1:<PORT> isLeader=true\n$/);
    const health = await run('cluster-health');
    expect(health.stdout).toBe('member <ID> is healthy: got healthy result from http://127.0.0.1:<PORT>\ncluster is healthy\n');
  });

  it('watch and watch --forever --recursive', async () => {
    const outputs = [];
    for (const s of sides) {
      const once = spawnEtcdctl(s.server.endpoint, ['watch', '/w/k'], V2);
      const forever = spawnEtcdctl(s.server.endpoint, ['watch', '--forever', '--recursive', '/w'], V2);
      await new Promise((r) => setTimeout(r, 700));
      await httpRequest(s.server.endpoint, 'PUT', '/v2/keys/w/k', new URLSearchParams({ value: 'one' }));
      await httpRequest(s.server.endpoint, 'PUT', '/v2/keys/w/other', new URLSearchParams({ value: 'two' }));
      await httpRequest(s.server.endpoint, 'DELETE', '/v2/keys/w/k');
      const onceResult = await once.exited();
      await forever.waitFor((out) => out.split('\n').length > 6, 10_000);
      const foreverResult = await forever.stop();
      outputs.push({ once: [onceResult.code, onceResult.stdout], forever: foreverResult.stdout });
    }
    expect(outputs[1]).toEqual(outputs[0]);
    expect(outputs[0].once).toEqual([0, 'one\n']);
    expect(outputs[0].forever).toBe('[set] /w/k\none\n[set] /w/other\ntwo\n[delete] /w/k\nPrevNode.Value: one\n');
  });
});
