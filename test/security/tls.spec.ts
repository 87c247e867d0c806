/**
 * TLS on the client port with client certificate authentication, side by side: the real etcdctl against a
 * real etcd 3.4 and against nestcd, both started with the same flags and the same test certificates.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { openStore, parseCoordinationOptions } from '@nestcd/recipes';
import { normalizeResult, REPO_ROOT } from '../support';
import { ctl, makePki, startTlsServer, TestPki, tlsFlags, TlsServer } from './support';

jest.setTimeout(60_000);

describe('security: TLS with client-cert-auth (etcd vs nestcd)', () => {
  let pki: TestPki;
  const servers: TlsServer[] = [];

  beforeAll(async () => {
    pki = makePki();
    const flags = [
      `--cert-file=${pki.server.cert}`, `--key-file=${pki.server.key}`, `--trusted-ca-file=${pki.ca}`, '--client-cert-auth',
    ];
    const ready = tlsFlags(pki.ca, pki.client('root'));
    servers.push(...(await Promise.all([startTlsServer('etcd', flags, ready), startTlsServer('nestcd', flags, ready)])));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    pki?.cleanup();
  });

  /** Runs the same etcdctl command on both; the normalized results must be equal; returns etcd's. */
  async function both(flags: string[], args: string[], stdin?: string) {
    const [ref, ours] = await Promise.all(servers.map((s) => ctl(s, flags, args, { stdin })));
    const norm = (r: typeof ref) => ({ ...normalizeResult(r), stderr: normalizeResult(r).stderr.replace(/^\{"level".*\n/gm, '') });
    expect({ args, nestcd: norm(ours) }).toEqual({ args, nestcd: norm(ref) });
    return ref;
  }

  it('a certificate signed by the trusted CA works', async () => {
    const good = tlsFlags(pki.ca, pki.client('root'));
    expect((await both(good, ['put', 'tls/a', '1'])).stdout).toBe('OK\n');
    expect((await both(good, ['get', 'tls/a'])).stdout).toBe('tls/a\n1\n');
  });

  it('no certificate, a self-signed one, an expired one or one from another CA: refused', async () => {
    const cases: Array<[string, string[]]> = [
      ['none', tlsFlags(pki.ca)],
      ['self-signed', tlsFlags(pki.ca, pki.selfSigned)],
      ['expired', tlsFlags(pki.ca, pki.expired)],
      ['other CA', tlsFlags(pki.ca, pki.otherServer)],
    ];
    const runs = cases.flatMap(([label, flags]) => servers.map(async (s) => ({ label, kind: s.kind, r: await ctl(s, flags, ['get', 'tls/a']) })));
    for (const { label, kind, r } of await Promise.all(runs)) {
      expect({ label, kind, code: r.code === 0 ? 0 : 'failed', stdout: r.stdout, refused: /context deadline exceeded/.test(r.stderr) }).toEqual({
        label, kind, code: 'failed', stdout: '', refused: true,
      });
    }
  });

  it('refuses at the handshake: nothing is served to a client without a certificate', async () => {
    const nestcd = servers[1];
    const port = Number(new URL(nestcd.endpoint).port);
    const outcome = await new Promise<{ data: string; error?: string }>((resolve) => {
      let data = '';
      const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(pki.ca), ALPNProtocols: ['http/1.1'] }, () => {
        socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      socket.on('data', (b) => (data += b.toString()));
      socket.on('error', (err) => resolve({ data, error: err.message }));
      socket.on('close', () => resolve({ data }));
    });
    expect(outcome.data).toBe('');
    expect(outcome.error).toMatch(/certificate required|alert/);
  });

  it('/health over TLS answers a client with a good certificate (curl --http1.1)', async () => {
    const pair = pki.client('root');
    const bodies = await Promise.all(
      servers.map(
        (s) =>
          new Promise<string>((resolve, reject) => {
            const socket = tls.connect(
              { host: '127.0.0.1', port: Number(new URL(s.endpoint).port), ca: readFileSync(pki.ca), cert: readFileSync(pair.cert), key: readFileSync(pair.key), ALPNProtocols: ['http/1.1'] },
              () => socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
            );
            let data = '';
            socket.on('data', (b) => (data += b.toString()));
            socket.on('error', reject);
            socket.on('close', () => resolve(data.split('\r\n\r\n')[1] ?? ''));
          }),
      ),
    );
    expect(bodies[1]).toBe(bodies[0]);
    expect(bodies[0]).toContain('"health":"true"');
  });

  it("with auth enabled the certificate's common name is the user", async () => {
    const root = tlsFlags(pki.ca, pki.client('root'));
    await both(root, ['user', 'add', 'root:rootpw']);
    await both(root, ['role', 'add', 'reader']);
    await both(root, ['role', 'grant-permission', '--prefix=true', 'reader', 'read', 'tls/']);
    await both(root, ['user', 'add', 'alice:alicepw']);
    await both(root, ['user', 'grant-role', 'alice', 'reader']);
    await both(root, ['user', 'grant-role', 'root', 'root']);
    expect((await both(root, ['auth', 'enable'])).stdout).toBe('Authentication Enabled\n');

    const alice = tlsFlags(pki.ca, pki.client('alice'));
    expect((await both(alice, ['get', 'tls/a'])).stdout).toBe('tls/a\n1\n');
    expect((await both(alice, ['put', 'tls/a', '2'])).stderr).toMatch(/etcdserver: permission denied/);
    expect((await both(alice, ['user', 'list'])).stderr).toMatch(/etcdserver: permission denied/);
    // A CN no user has: no permissions at all.
    expect((await both(tlsFlags(pki.ca, pki.client('mallory')), ['get', 'tls/a'])).stderr).toMatch(/etcdserver: permission denied/);
    // CN=root is root; a --user given with the certificate wins over the CN.
    expect((await both(root, ['user', 'list'])).stdout).toBe('alice\nroot\n');
    expect((await both(root, ['--user=alice:alicepw', 'put', 'tls/a', '3'])).stderr).toMatch(/etcdserver: permission denied/);

    // nestcdctl takes the same flags
    const nestcdctl = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(join(REPO_ROOT, 'bin', 'nestcdctl'), [`--endpoints=${servers[1].endpoint}`, ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    const aliceCerts = [`--cacert=${pki.ca}`, `--cert=${pki.client('alice').cert}`, `--key=${pki.client('alice').key}`];
    expect((await nestcdctl([...aliceCerts, '--user=root:rootpw', 'put', 'tls/n', '1'])).stdout).toBe('OK\n');
    expect((await nestcdctl([...aliceCerts, 'get', 'tls/n'])).stdout).toBe('tls/n\n1\n');
    // after etcdctl's clientv3 warning line (nestcdctl prints it too), the error itself
    const denied = (await nestcdctl([...aliceCerts, 'put', 'tls/n', '2'])).stderr;
    expect(denied).not.toContain('DeprecationWarning');
    expect(denied).toMatch(/(^|\n)Error: etcdserver: permission denied\n$/);
    expect((await nestcdctl([...aliceCerts, '--user=root:wrong', 'get', 'tls/n'])).stderr).toMatch(/(^|\n)Error: etcdserver: authentication failed, invalid user ID or password\n$/);
    expect((await nestcdctl([`--cacert=${pki.ca}`, 'get', 'tls/n'])).code).not.toBe(0);

    // The recipes module's store options take the same TLS material and credentials, on both servers.
    for (const server of servers) {
      const options = parseCoordinationOptions({
        store: { endpoints: [server.endpoint], tls: { ca: pki.ca, cert: pki.client('alice').cert, key: pki.client('alice').key }, credentials: { user: 'root', password: 'rootpw' } },
      });
      const { client } = await openStore(options.store);
      try {
        await client.put({ key: Buffer.from('tls/recipes'), value: Buffer.from(server.kind) });
        expect((await client.range({ key: Buffer.from('tls/recipes') })).kvs[0].value.toString()).toBe(server.kind);
      } finally {
        await client.close();
      }
    }
    expect(() => parseCoordinationOptions({ store: { endpoints: [servers[1].endpoint], tls: { cafile: pki.ca } } })).toThrow(/tls/);

    expect((await both(root, ['auth', 'disable'])).stdout).toBe('Authentication Disabled\n');
  });
});

describe('security: --auto-tls (etcd vs nestcd)', () => {
  it('generates a self-signed certificate at start; clients connect without verifying it', async () => {
    const insecure = ['--insecure-transport=false', '--insecure-skip-tls-verify'];
    const servers = await Promise.all([startTlsServer('etcd', ['--auto-tls'], insecure), startTlsServer('nestcd', ['--auto-tls'], insecure)]);
    try {
      const results = await Promise.all(servers.map((s) => ctl(s, insecure, ['put', 'auto', 'tls'])));
      expect(results.map((r) => r.stdout)).toEqual(['OK\n', 'OK\n']);
      // Verifying against the system roots fails on both: the certificate signs itself.
      const verified = await Promise.all(servers.map((s) => ctl(s, [], ['get', 'auto'])));
      for (const r of verified) expect(r.code).not.toBe(0);
      expect(existsSync(join(servers[1].dataDir, 'fixtures', 'client', 'cert.pem'))).toBe(true);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });
});
