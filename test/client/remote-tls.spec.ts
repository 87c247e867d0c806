// TLS and client-certificate auth against the real etcd 3.4 (nestcd's TLS server side may land later; the client
// options are checked against the reference now).
import { ClientError, RemoteClient } from '@nestcd/client';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdBinary, freePort } from '../support/processes';

const b = (s: string) => Buffer.from(s);

function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=nestcd test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  for (const name of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', `${name}.pem`);
  }
}

describe('RemoteClient over TLS (real etcd 3.4 with client certificate auth)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nestcd-client-tls-'));
  let etcd: ChildProcess | undefined;
  let endpoint = '';
  const clients: RemoteClient[] = [];

  beforeAll(async () => {
    makeCerts(dir);
    const port = await freePort();
    const peer = `http://127.0.0.1:${await freePort()}`;
    endpoint = `https://127.0.0.1:${port}`;
    etcd = spawn(
      etcdBinary(),
      [
        '--name', 'tls', '--data-dir', join(dir, 'data'),
        '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `tls=${peer}`,
        '--cert-file', join(dir, 'server.pem'), '--key-file', join(dir, 'server.key'),
        '--client-cert-auth', '--trusted-ca-file', join(dir, 'ca.pem'),
      ],
      { stdio: 'ignore' },
    );
    const probe = new RemoteClient({ endpoints: [endpoint], tls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key') }, dialTimeoutMs: 500, callTimeoutMs: 1000 });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await probe.status();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await probe.close();
  }, 40_000);

  afterAll(async () => {
    for (const c of clients) await c.close();
    if (etcd && etcd.exitCode === null) {
      const exited = new Promise((r) => etcd!.once('exit', r));
      etcd.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('talks TLS with a client certificate, given as file paths or PEM contents', async () => {
    const byPath = new RemoteClient({ endpoints: [endpoint], tls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key') } });
    clients.push(byPath);
    await byPath.put({ key: b('tls'), value: b('secure') });
    const byPem = new RemoteClient({ endpoints: [endpoint], tls: { ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) } });
    clients.push(byPem);
    expect((await byPem.range({ key: b('tls') })).kvs.map((kv) => kv.value.toString())).toEqual(['secure']);
  });

  it('without a client certificate, or without trusting the CA, the call fails', async () => {
    const noCert = new RemoteClient({ endpoints: [endpoint], tls: { ca: join(dir, 'ca.pem') }, dialTimeoutMs: 500, callTimeoutMs: 1500 });
    const untrusted = new RemoteClient({ endpoints: [endpoint], tls: { cert: join(dir, 'client.pem'), key: join(dir, 'client.key') }, dialTimeoutMs: 500, callTimeoutMs: 1500 });
    clients.push(noCert, untrusted);
    await Promise.all([
      expect(noCert.range({ key: b('tls') })).rejects.toBeInstanceOf(ClientError),
      expect(untrusted.range({ key: b('tls') })).rejects.toBeInstanceOf(ClientError),
    ]);
  });
});
