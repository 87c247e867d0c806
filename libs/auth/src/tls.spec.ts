import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { commonName, loadTls, opensslCiphers, serverOptions } from './tls';

describe('TLS material', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nestcd-tls-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("maps etcd's --cipher-suites (Go names) to OpenSSL's and refuses unknown ones", () => {
    expect(opensslCiphers(['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'])).toBe(
      'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384',
    );
    expect(() => opensslCiphers(['TLS_NOPE'])).toThrow('unexpected TLS cipher suite "TLS_NOPE"');
  });

  it('auto TLS makes a self-signed certificate once; a cert without a key is refused', async () => {
    const auto = join(dir, 'fixtures', 'client');
    const m = await loadTls({ autoTls: true }, auto, ['127.0.0.1', 'localhost']);
    expect(m?.selfSigned).toBe(true);
    const again = await loadTls({ autoTls: true }, auto, ['127.0.0.1']);
    expect(again!.cert.equals(m!.cert)).toBe(true);
    expect(await loadTls({}, auto, [])).toBeUndefined();
    await expect(loadTls({ certFile: join(auto, 'cert.pem') }, auto, [])).rejects.toThrow('both --cert-file and --key-file');
    // its subject names the organisation only (no CN that could pass for a user)
    expect(commonName(new X509Certificate(m!.cert).raw)).toBeUndefined();
  });

  it('--cipher-suites restricts TLS 1.2 handshakes to the listed suites', async () => {
    const m = (await loadTls({ autoTls: true, cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'] }, join(dir, 'c'), ['127.0.0.1']))!;
    const server = tls.createServer(serverOptions(m), (s) => s.end('hi'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const attempt = (ciphers: string) =>
      new Promise<string>((resolve) => {
        const c = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.2', ciphers }, () => {
          resolve(c.getCipher().standardName);
          c.destroy();
        });
        c.on('error', (err) => resolve(`refused: ${err.message}`));
      });
    try {
      expect(await attempt('ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384')).toBe('TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
      expect(await attempt('ECDHE-ECDSA-AES256-GCM-SHA384')).toMatch(/^refused/);
    } finally {
      server.close();
    }
  });
});
