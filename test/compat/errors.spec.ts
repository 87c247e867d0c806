/**
 * Error paths, side by side: empty key, request over the size limit, unknown
 * lease, missing key. The clientv3 retry-interceptor warning line on stderr
 * carries the gRPC status code, so codes must match too (ts/UUID/port masked).
 */
import { useCompatServers } from '../support/compat';

const retryLine = (code: string, desc: string) =>
  new RegExp(
    `^\\{"level":"warn","ts":"[^"]+","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"endpoint://client-[0-9a-f-]+/127\\.0\\.0\\.1:\\d+","attempt":0,"error":"rpc error: code = ${code} desc = ${desc}"\\}\\n`,
  );

describe('compat: errors', () => {
  const cmp = useCompatServers();

  it('empty key: etcdserver: key is not provided (InvalidArgument, exit 1) for put, get and del', async () => {
    for (const args of [['put', '', 'v'], ['get', ''], ['del', ''], ['put', '', 'v', '--prev-kv', '-w', 'json']]) {
      const r = await cmp.run(args);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(retryLine('InvalidArgument', 'etcdserver: key is not provided'));
      expect(r.stderr).toMatch(/\nError: etcdserver: key is not provided\n$/);
    }
  });

  it('value over the 1.5 MiB request limit (via stdin): etcdserver: request is too large', async () => {
    const big = Buffer.alloc(1600 * 1024, 'x');
    const r = await cmp.run(['put', 'big/k'], { stdin: big });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(retryLine('InvalidArgument', 'etcdserver: request is too large'));
    expect(r.stderr).toMatch(/\nError: etcdserver: request is too large\n$/);
    // Exactly 1.5 MiB of value is also too large (the limit applies to the whole request).
    const edge = await cmp.run(['put', 'big/k'], { stdin: Buffer.alloc(1536 * 1024, 'x') });
    expect(edge.stderr).toMatch(/\nError: etcdserver: request is too large\n$/);
    expect((await cmp.run(['get', 'big/k'])).stdout).toBe('');
  });

  it('a value just under the limit is accepted and read back intact', async () => {
    const value = Buffer.alloc(1500 * 1024, 'y');
    expect((await cmp.run(['put', 'big/ok'], { stdin: value })).stdout).toBe('OK\n');
    const r = await cmp.scenario(async ({ ctl }) => {
      const got = await ctl.run(['get', 'big/ok', '--print-value-only']);
      return { code: got.code, length: got.stdout.length, intact: got.stdout === `${value.toString()}\n` };
    });
    expect(r).toEqual({ code: 0, length: 1500 * 1024 + 1, intact: true });
  });

  it('over 2 MiB is refused by the etcdctl client itself (ResourceExhausted, client-side gRPC limit)', async () => {
    const r = await cmp.run(['put', 'big/huge'], { stdin: Buffer.alloc(2 * 1024 * 1024, 'z') });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\nError: rpc error: code = ResourceExhausted desc = trying to send message larger than max \(\d+ vs\. 2097152\)\n$/);
  });

  it('unknown lease on put: etcdserver: requested lease not found (NotFound, exit 1)', async () => {
    const r = await cmp.run(['put', 'e/k', 'v', '--lease=1234']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(retryLine('NotFound', 'etcdserver: requested lease not found'));
    expect(r.stderr).toMatch(/\nError: etcdserver: requested lease not found\n$/);
  });

  it('get on a missing key prints nothing and exits 0', async () => {
    expect(await cmp.run(['get', 'e/missing'])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await cmp.run(['get', 'e/missing', '--prefix'])).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('nothing above changed the store except big/ok', async () => {
    const j = JSON.parse((await cmp.run(['get', '', '--from-key', '--keys-only', '-w', 'json'])).stdout);
    expect(j.header.revision).toBe(2);
    expect(j.count).toBe(1);
  });
});
