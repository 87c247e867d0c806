// A nestcd process killed (SIGKILL) and restarted on the same data dir and port: the RemoteClient's watch resumes
// from the revision after the last one it delivered (nothing missed or repeated) and its lease keep-alive carries on.
import { RemoteClient, type WatchEvent } from '@nestcd/client';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startNestcd, type ServerHandle } from '../support/processes';
import { waitFor } from './contract';

const b = (s: string) => Buffer.from(s);

describe('RemoteClient across a nestcd restart', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nestcd-client-restart-'));
  let server: ServerHandle | undefined;
  const clients: RemoteClient[] = [];

  afterAll(async () => {
    for (const c of clients) await c.close();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('watch resumes at lastRevision + 1 and the keep-alive survives a kill -9 and restart', async () => {
    const clientPort = await freePort();
    const peerPort = await freePort();
    server = await startNestcd({ dataDir, clientPort, peerPort });
    const watcher = new RemoteClient({ endpoints: [server.endpoint], dialTimeoutMs: 1000 });
    clients.push(watcher);
    const seen: WatchEvent[] = [];
    let disconnected = 0;
    let reconnected = 0;
    const w = watcher.watch({ key: b('r/'), rangeEnd: b('r0') }, { onEvents: (batch) => seen.push(...batch.events), onDisconnected: () => disconnected++, onReconnected: () => reconnected++ });
    await w.ready;
    const lease = await watcher.leaseGrant(15);
    let lost: Error | undefined;
    let renewals = 0;
    watcher.leaseKeepAlive(lease.id, { onKeepAlive: () => renewals++, onLost: (err) => (lost = err) });

    const writer = new RemoteClient({ endpoints: [server.endpoint], dialTimeoutMs: 1000 });
    clients.push(writer);
    for (let i = 0; i < 10; i++) await writer.put({ key: b(`r/${i}`), value: b(String(i)) });
    await waitFor(() => seen.length === 10, 10_000, 'the first ten events');

    server.process.kill('SIGKILL');
    await waitFor(() => !server!.isRunning(), 5000, 'the process to die');
    await waitFor(() => disconnected > 0, 5000, 'onDisconnected');
    server = await startNestcd({ dataDir, clientPort, peerPort });

    for (let i = 10; i < 20; i++) await writer.put({ key: b(`r/${i}`), value: b(String(i)) });
    await waitFor(() => seen.length >= 20, 15_000, `twenty events (have ${seen.length})`);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.map((e) => e.kv.value.toString())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    const revs = seen.map((e) => e.kv.modRevision);
    expect(new Set(revs).size).toBe(20);
    expect(reconnected).toBeGreaterThanOrEqual(1);
    const before = renewals;
    await waitFor(() => renewals > before, 10_000, 'a renewal after the restart');
    expect(lost).toBeUndefined();
    expect((await writer.leaseTimeToLive(lease.id)).ttl).toBeGreaterThan(0);
  }, 60_000);
});
