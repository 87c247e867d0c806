import { parseConfig } from '@nestcd/config';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMember, restoreSnapshot } from '.';

const config = (argv: string[]) => {
  const parsed = parseConfig(argv, {});
  if (parsed.kind !== 'run') throw new Error('config');
  return parsed.config;
};

describe('snapshot restore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nestcd-restore-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds a new member from a saved snapshot: same keys, revisions and leases, new membership', async () => {
    const source = await openMember(config(['--data-dir', join(dir, 'source')]));
    await source.start();
    await source.put({ key: Buffer.from('a'), value: Buffer.from('1') });
    const lease = await source.leaseGrant(300, 0n);
    await source.put({ key: Buffer.from('b'), value: Buffer.from('2'), lease: lease.id });
    const revision = source.store.currentRevision;
    // What the Snapshot RPC streams: the state padded to 512-byte blocks, then its sha256.
    const raw = Buffer.from(await source.snapshot());
    const body = Buffer.concat([raw, Buffer.alloc((512 - (raw.length % 512)) % 512)]);
    const file = join(dir, 'snap.db');
    writeFileSync(file, Buffer.concat([body, createHash('sha256').update(body).digest()]));
    await source.stop();

    const target = config(['--data-dir', join(dir, 'restored'), '--name', 'm2', '--initial-cluster', 'm2=http://127.0.0.1:23999', '--initial-advertise-peer-urls', 'http://127.0.0.1:23999']);
    const steps: string[] = [];
    const result = await restoreSnapshot(file, target, (step) => steps.push(step));
    expect(result).toMatchObject({ revision, keys: 2 });
    expect(steps[steps.length - 1]).toBe('done');

    const restored = await openMember(target);
    await restored.start();
    expect(restored.store.currentRevision).toBe(revision);
    expect((await restored.range({ key: Buffer.from('b') })).kvs[0].lease).toBe(lease.id);
    expect((await restored.leaseTimeToLive(lease.id, true)).keys.map(String)).toEqual(['b']);
    expect(restored.memberList().map((m) => m.name)).toEqual(['m2']);
    await restored.stop();

    await expect(restoreSnapshot(file, target)).rejects.toThrow(/exists and is not empty/);
    writeFileSync(join(dir, 'bad.db'), Buffer.concat([body, Buffer.alloc(32)]));
    await expect(restoreSnapshot(join(dir, 'bad.db'), config(['--data-dir', join(dir, 'other')]))).rejects.toThrow(/sha256 checksum mismatch/);
  });
});
