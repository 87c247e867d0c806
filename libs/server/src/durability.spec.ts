import { parseConfig } from '@nestcd/config';
import { FaultyFileSystem, NodeFileSystem } from '@nestcd/storage';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdServer, openMember } from '.';

// Faults injected under the WAL (a filesystem shim): the member never acknowledges a write it could not make
// durable, refuses to start on corruption, and everything it acknowledged is there after a restart.

const key = (k: string) => Buffer.from(k);

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error('timed out');
}

describe('a member on a faulty disk', () => {
  let dataDir: string;
  let servers: EtcdServer[] = [];

  const open = async (fs = new FaultyFileSystem(new NodeFileSystem()), snapshotCount = 1000000) => {
    const parsed = parseConfig(['--data-dir', dataDir, '--snapshot-count', String(snapshotCount), '--max-snapshots', '2', '--max-wals', '2'], {});
    if (parsed.kind !== 'run') throw new Error('config');
    const server = await openMember(parsed.config, { fs, walSegmentBytes: 64 * 1024 });
    await server.start();
    servers.push(server);
    return { server, fs };
  };
  const value = async (server: EtcdServer, k: string, serializable = false) =>
    (await server.range({ key: key(k), serializable })).kvs[0]?.value.toString();

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'nestcd-durability-'));
  });

  afterEach(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    servers = [];
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged write across a restart, with the revision counter never going back', async () => {
    const { server } = await open();
    const lease = await server.leaseGrant(600, 0n);
    for (let i = 0; i < 300; i++) await server.put({ key: key(`k${i}`), value: key(`v${i}`), lease: i % 2 ? lease.id : 0n });
    await Promise.all(Array.from({ length: 100 }, (_, i) => server.put({ key: key(`c${i}`), value: key('concurrent') })));
    const revision = server.store.currentRevision;
    await server.stop();
    const { server: again } = await open();
    expect(again.store.currentRevision).toBe(revision);
    expect(await value(again, 'k299')).toBe('v299');
    expect((await again.range({ key: key('c'), rangeEnd: key('d'), countOnly: true })).count).toBe(100);
    const ttl = await again.leaseTimeToLive(lease.id, true);
    expect(ttl.ttl).toBeGreaterThan(500);
    expect(ttl.keys).toHaveLength(150);
  });

  it('snapshots in the background without stalling writes, keeps only the newest files, restarts from them', async () => {
    const { server } = await open(undefined, 200);
    const v = Buffer.alloc(200, 'v');
    let next = 0;
    // 16 concurrent writers through several snapshots; none may time out waiting for a snapshot to be written.
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < 3000) {
        const i = next++;
        await server.put({ key: key(`s${String(i).padStart(5, '0')}`), value: v });
      }
    }));
    const revision = server.store.currentRevision;
    await server.stop();
    const snaps = readdirSync(join(dataDir, 'member', 'snap')).filter((f) => f.endsWith('.snap'));
    expect(snaps.length).toBeGreaterThan(0);
    expect(snaps.length).toBeLessThanOrEqual(2);
    expect(readdirSync(join(dataDir, 'member', 'wal')).filter((f) => f.endsWith('.wal')).length).toBeLessThanOrEqual(3);
    const { server: again } = await open(undefined, 200);
    expect(again.store.currentRevision).toBe(revision);
    expect((await again.range({ key: key('s'), rangeEnd: key('t'), countOnly: true })).count).toBe(3000);
  });

  it('a crash in the middle of writing a snapshot loses nothing: the restart uses the WAL, and no partial snapshot is read', async () => {
    const { server, fs } = await open(undefined, 200);
    // the snapshot at entry ~200 holds about 2 MiB: it is written a MiB at a time, and the first flush crashes
    let crashedIn: string | undefined;
    fs.beforeDatasync = (file) => {
      if (file.endsWith('.snap.tmp') && !crashedIn) {
        crashedIn = file;
        fs.crash();
      }
    };
    const value = Buffer.alloc(8 * 1024, 'x');
    const acknowledged: string[] = [];
    for (let i = 0; i < 300 && !fs.crashed; i++) {
      const k = `big${String(i).padStart(3, '0')}`;
      try {
        await server.put({ key: key(k), value });
        acknowledged.push(k);
      } catch {
        break; // the process is "dead": nothing after this was acknowledged
      }
    }
    await waitUntil(() => crashedIn !== undefined);
    expect(acknowledged.length).toBeGreaterThan(200);
    await server.stop().catch(() => undefined);
    const snapDir = join(dataDir, 'member', 'snap');
    expect(readdirSync(snapDir).filter((f) => f.endsWith('.snap.tmp'))).toHaveLength(1);
    const { server: again } = await open(undefined, 1000000);
    const got = await again.range({ key: key('big'), rangeEnd: key('bih'), keysOnly: true });
    // every acknowledged write, in order (a write made durable just before the crash may be there too)
    expect(got.kvs.map((kv) => kv.key.toString()).slice(0, acknowledged.length)).toEqual(acknowledged);
    expect(readdirSync(snapDir).filter((f) => f.endsWith('.snap') && !f.startsWith('0000000000000001-0000000000000001'))).toEqual([]);
  });

  it('stops accepting writes when fsync fails, instead of pretending, and keeps serving local reads', async () => {
    const { server, fs } = await open();
    await server.put({ key: key('before'), value: key('1') });
    fs.failFsync = 'always';
    await expect(server.put({ key: key('during'), value: key('2') })).rejects.toThrow(/etcdserver: .*(EIO|fsync|failed)/i);
    await expect(server.put({ key: key('after'), value: key('3') })).rejects.toThrow(/etcdserver:/);
    // Linearizable reads need the log too, so they are refused; serializable reads still answer.
    await expect(value(server, 'before')).rejects.toThrow(/etcdserver:/);
    expect(await value(server, 'before', true)).toBe('1');
    expect(await value(server, 'during', true)).toBeUndefined();
    await server.stop();
    const { server: again } = await open();
    expect(await value(again, 'before')).toBe('1');
    await again.put({ key: key('after-restart'), value: key('4') });
    expect(await value(again, 'after-restart')).toBe('4');
  });

  it('reports a full disk clearly, corrupts nothing, and recovers once space returns', async () => {
    const { server, fs } = await open();
    for (let i = 0; i < 20; i++) await server.put({ key: key(`k${i}`), value: Buffer.alloc(512, 'a') });
    fs.spaceLeft = 0;
    await expect(server.put({ key: key('no-space'), value: Buffer.alloc(512, 'b') })).rejects.toThrow(/ENOSPC|no space/i);
    fs.spaceLeft = Infinity;
    await server.stop();
    const { server: again } = await open();
    for (let i = 0; i < 20; i++) expect(await value(again, `k${i}`)).toBe('a'.repeat(512));
    await again.put({ key: key('space-returned'), value: key('ok') });
    expect(await value(again, 'space-returned')).toBe('ok');
  });

  it('refuses to start when an old WAL record is corrupt, naming the file and offset', async () => {
    const { server } = await open();
    for (let i = 0; i < 50; i++) await server.put({ key: key(`k${i}`), value: Buffer.alloc(100, 'x') });
    await server.stop();
    const walDir = join(dataDir, 'member', 'wal');
    const segment = join(walDir, readdirSync(walDir).filter((f) => f.endsWith('.wal')).sort()[0]);
    const fs = new FaultyFileSystem(new NodeFileSystem());
    await fs.flipBit(segment, 400, 3);
    await expect(open(fs)).rejects.toThrow(new RegExp(`${segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*(offset|at) \\d+`));
  });
});
