/**
 * Test certificates (made with the openssl CLI at test time, never committed) and TLS servers for the
 * security tests: a real etcd 3.4 or nestcd serving https:// client URLs, and etcdctl with certificate flags.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdBinary, etcdctl, EtcdctlOptions, EtcdctlResult, freePort, nestcdBinary, REPO_ROOT, ServerKind } from '../support';

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  ca: string;
  /** Server certificate for 127.0.0.1/localhost, signed by the CA (also usable as a peer client certificate). */
  server: CertPair;
  /** Client certificates signed by the CA, by common name. */
  client(cn: string): CertPair;
  /** A certificate for `cn` that signs itself (not signed by the CA). */
  selfSigned: CertPair;
  /** Signed by the CA but already expired. */
  expired: CertPair;
  /** A second, unrelated CA and a server/peer certificate it signed. */
  otherCa: string;
  otherServer: CertPair;
  cleanup(): void;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });

function newKeyAndCsr(dir: string, name: string, cn: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
}

function sign(dir: string, name: string, ca: string, days: number, ext: string): CertPair {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', String(days), '-out', `${name}.pem`, '-extfile', `${name}.ext`], dir);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

function newCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${name}`], dir);
}

const SERVER_EXT = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n';
const CLIENT_EXT = 'extendedKeyUsage=clientAuth\n';

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'nestcd-pki-'));
  newCa(dir, 'ca');
  newCa(dir, 'other-ca');
  newKeyAndCsr(dir, 'server', 'server');
  const server = sign(dir, 'server', 'ca', 2, SERVER_EXT);
  newKeyAndCsr(dir, 'other-server', 'server');
  const otherServer = sign(dir, 'other-server', 'other-ca', 2, SERVER_EXT);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-keyout', 'self.key', '-out', 'self.pem', '-subj', '/CN=root', '-addext', SERVER_EXT.split('\n')[0]], dir);
  newKeyAndCsr(dir, 'expired', 'root');
  // -days -1: the certificate ended a day before it was issued.
  const expired = sign(dir, 'expired', 'ca', -1, SERVER_EXT);
  const clients = new Map<string, CertPair>();
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    server,
    otherCa: join(dir, 'other-ca.pem'),
    otherServer,
    selfSigned: { cert: join(dir, 'self.pem'), key: join(dir, 'self.key') },
    expired,
    client(cn) {
      let pair = clients.get(cn);
      if (!pair) {
        newKeyAndCsr(dir, `client-${cn}`, cn);
        pair = sign(dir, `client-${cn}`, 'ca', 2, CLIENT_EXT);
        clients.set(cn, pair);
      }
      return pair;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** etcdctl's TLS flags for a certificate pair (and the CA to verify the server). */
export function tlsFlags(ca: string | undefined, pair?: CertPair): string[] {
  return [...(ca ? [`--cacert=${ca}`] : []), ...(pair ? [`--cert=${pair.cert}`, `--key=${pair.key}`] : [])];
}

export interface TlsServer {
  kind: ServerKind;
  endpoint: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Starts a single-member etcd or nestcd with `flags` (TLS flags; client URLs are https unless `scheme` says
 * otherwise) and waits until `etcdctl endpoint health` with `readyFlags` succeeds.
 */
export async function startTlsServer(
  kind: ServerKind, flags: string[], readyFlags: string[],
  options: { scheme?: 'http' | 'https'; name?: string; dataDir?: string; clientPort?: number; peerPort?: number } = {},
): Promise<TlsServer> {
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), `sec-${kind}-`));
  const scheme = options.scheme ?? 'https';
  const client = `${scheme}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const name = options.name ?? 'ref';
  const args = [
    '--name', name, '--data-dir', dataDir, '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`, ...flags,
  ];
  const binary = kind === 'etcd' ? etcdBinary() : nestcdBinary();
  const child: ChildProcess = spawn(kind === 'etcd' ? binary : process.execPath, kind === 'etcd' ? args : [binary, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-64 * 1024)));
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-64 * 1024)));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const server: TlsServer = {
    kind,
    endpoint: client,
    clientPort,
    peerPort,
    dataDir,
    logs: () => log,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(t);
      }
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`${kind} exited at start:\n${log.slice(-3000)}`);
    const r = await etcdctl(client, [...readyFlags, 'endpoint', 'health', '--command-timeout=1s', '--dial-timeout=1s'], { timeoutMs: 4000 });
    if (r.code === 0) return server;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${kind} not healthy: ${r.stderr}\n${log.slice(-3000)}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** etcdctl against a TLS server; a short dial timeout, since a refused handshake only ends in a timeout. */
export function ctl(server: { endpoint: string }, flags: string[], args: string[], opts: EtcdctlOptions = {}): Promise<EtcdctlResult> {
  return etcdctl(server.endpoint, [...flags, '--dial-timeout=1500ms', '--command-timeout=3s', ...args], { timeoutMs: 10_000, ...opts });
}
