/**
 * TLS between members with --peer-client-cert-auth: at the transport level (members with a certificate the
 * peer CA signed talk; a self-signed, expired or foreign-CA certificate is refused at the handshake), and
 * with processes (a member with a bad certificate cannot join a three-member TLS cluster, the other two
 * carry on).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientOptions, serverOptions, TlsMaterial } from '@nestcd/auth';
import { emptyMessage, Message, MessageType } from '@nestcd/raft';
import { PeerTransport } from '@nestcd/transport';
import { etcdctl, freePort, nestcdBinary, REPO_ROOT, sleep } from '../support';
import { CertPair, makePki, TestPki } from './support';

jest.setTimeout(90_000);

const CLUSTER = 0x5ec0n;

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('security: peer TLS with peer client cert auth', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makePki();
  });
  afterAll(() => pki?.cleanup());

  describe('transport', () => {
    const live: PeerTransport[] = [];
    afterEach(async () => {
      await Promise.all(live.splice(0).map((t) => t.stop()));
    });

    const material = (pair: CertPair, ca = pki.ca): TlsMaterial => ({
      cert: readFileSync(pair.cert), key: readFileSync(pair.key), ca: readFileSync(ca), clientCertAuth: true, selfSigned: false,
    });

    async function node(id: bigint, pair: CertPair, ca?: string) {
      const got: Message[] = [];
      const logs: string[] = [];
      const m = material(pair, ca);
      const t = new PeerTransport({
        memberId: id, clusterId: CLUSTER, listenUrls: ['https://127.0.0.1:0'],
        tls: { server: serverOptions(m), client: clientOptions(m) },
        onMessage: (msg) => void got.push(msg), log: (l) => logs.push(l), backoffMinMs: 20, backoffMaxMs: 200,
      });
      live.push(t);
      const [port] = await t.start();
      return { id, t, got, logs, url: `https://127.0.0.1:${port}` };
    }
    const heartbeat = (from: bigint, to: bigint): Message => ({ ...emptyMessage(MessageType.MsgHeartbeat, to), from, term: 1 });

    it('members whose certificates the CA signed exchange messages', async () => {
      const [a, b] = await Promise.all([node(1n, pki.server), node(2n, pki.server)]);
      a.t.addPeer(b.id, [b.url]);
      b.t.addPeer(a.id, [a.url]);
      a.t.send([heartbeat(a.id, b.id)]);
      b.t.send([heartbeat(b.id, a.id)]);
      await waitFor(() => a.got.length > 0 && b.got.length > 0, 'heartbeats over TLS');
    });

    it.each([
      ['a self-signed certificate', () => ({ pair: pki.selfSigned, ca: pki.ca })],
      ['an expired certificate', () => ({ pair: pki.expired, ca: pki.ca })],
      ['a certificate from another CA', () => ({ pair: pki.otherServer, ca: pki.ca })],
    ])('a member with %s is refused at the handshake', async (_label, bad) => {
      const good = await node(1n, pki.server);
      const { pair, ca } = bad();
      const intruder = await node(3n, pair, ca);
      intruder.t.addPeer(good.id, [good.url]);
      for (let i = 0; i < 5; i++) {
        intruder.t.send([heartbeat(intruder.id, good.id)]);
        await sleep(100);
      }
      await waitFor(() => good.logs.some((l) => /rejected peer connection/.test(l)), 'the refusal in the log');
      expect(good.got).toEqual([]);
    });

    it('a member dialing without TLS gets nothing through', async () => {
      const good = await node(1n, pki.server);
      const plain = new PeerTransport({ memberId: 4n, clusterId: CLUSTER, listenUrls: ['http://127.0.0.1:0'], onMessage: () => undefined, log: () => undefined });
      live.push(plain);
      await plain.start();
      plain.addPeer(good.id, [good.url.replace('https:', 'http:')]);
      plain.send([heartbeat(4n, good.id)]);
      await sleep(500);
      expect(good.got).toEqual([]);
    });
  });

  describe('processes', () => {
    const children: ChildProcess[] = [];
    const dirs: string[] = [];
    afterAll(async () => {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    it('a member with a self-signed peer certificate cannot join; the others carry on', async () => {
      const names = ['p1', 'p2', 'p3'];
      const peerPorts = await Promise.all(names.map(() => freePort()));
      const clientPorts = await Promise.all(names.map(() => freePort()));
      const initialCluster = names.map((n, i) => `${n}=https://127.0.0.1:${peerPorts[i]}`).join(',');
      const logs = names.map(() => '');
      names.forEach((name, i) => {
        const dir = mkdtempSync(join(tmpdir(), `peer-tls-${name}-`));
        dirs.push(dir);
        const pair = name === 'p3' ? pki.selfSigned : pki.server;
        const client = `http://127.0.0.1:${clientPorts[i]}`;
        const child = spawn(process.execPath, [
          nestcdBinary(), '--name', name, '--data-dir', dir, '--listen-client-urls', client, '--advertise-client-urls', client,
          '--listen-peer-urls', `https://127.0.0.1:${peerPorts[i]}`, '--initial-advertise-peer-urls', `https://127.0.0.1:${peerPorts[i]}`,
          '--initial-cluster', initialCluster, `--peer-cert-file=${pair.cert}`, `--peer-key-file=${pair.key}`,
          `--peer-trusted-ca-file=${pki.ca}`, '--peer-client-cert-auth',
        ], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        child.stderr!.on('data', (b: Buffer) => (logs[i] = (logs[i] + b.toString()).slice(-32 * 1024)));
        children.push(child);
      });
      const endpoint = (i: number) => `http://127.0.0.1:${clientPorts[i]}`;
      await waitFor(async () => (await etcdctl(endpoint(0), ['put', 'peer/tls', 'ok', '--command-timeout=2s'], { timeoutMs: 5000 })).code === 0, 'a write through p1', 60_000);
      expect((await etcdctl(endpoint(1), ['get', 'peer/tls', '--print-value-only'])).stdout).toBe('ok\n');
      // p3 never joins: it cannot serve a linearizable read, and the others refused its certificate.
      const fromP3 = await etcdctl(endpoint(2), ['get', 'peer/tls', '--command-timeout=2s'], { timeoutMs: 8000 });
      expect(fromP3.code).not.toBe(0);
      await waitFor(() => /rejected peer connection/.test(logs[0] + logs[1]), 'the refusal in p1/p2 logs');
    });
  });
});
