// `snapshot status`: nestcdctl reads etcd's snapshot files (bbolt) exactly as etcdctl does (hash, revision, keys,
// size in every format, and its errors), and reports a nestcd snapshot with the keyspace's HashKV and revision.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerHandle, startServer } from '../support';
import { runTool } from './golden';

jest.setTimeout(120_000);

describe('nestcdctl snapshot status', () => {
  const dir = mkdtempSync(join(tmpdir(), 'snapshot-status-'));
  const servers: ServerHandle[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads etcd's snapshot files as etcdctl does, in every format, and fails as it does", async () => {
    const etcd = await startServer('etcd', { name: 'ref' });
    servers.push(etcd);
    // Enough data that the key bucket spans branch pages, plus a lease (another bucket).
    for (let t = 0; t < 20; t++) {
      const puts = Array.from({ length: 100 }, (_, i) => `put key${t}/${i} ${'v'.repeat(150)}`).join('\n');
      const r = await runTool('etcdctl', etcd.endpoint, ['txn'], { stdin: `\n${puts}\n\n\n` });
      expect(r.code).toBe(0);
    }
    expect((await runTool('etcdctl', etcd.endpoint, ['lease', 'grant', '600'])).code).toBe(0);
    const file = join(dir, 'etcd.db');
    expect((await runTool('etcdctl', etcd.endpoint, ['snapshot', 'save', file])).code).toBe(0);
    writeFileSync(join(dir, 'garbage.db'), 'not a database\n');

    const cases = [
      ['snapshot', 'status', file],
      ['snapshot', 'status', file, '-w', 'json'],
      ['snapshot', 'status', file, '-w', 'table'],
      ['snapshot', 'status', file, '-w', 'fields'],
      ['snapshot', 'status', join(dir, 'missing.db')],
      ['snapshot', 'status', join(dir, 'garbage.db')],
      ['snapshot', 'status'],
    ];
    for (const args of cases) {
      const [a, b] = await Promise.all([runTool('etcdctl', '', args, { endpoints: '' }), runTool('nestcdctl', '', args, { endpoints: '' })]);
      expect({ args, code: b.code, stdout: b.stdout, stderr: b.stderr }).toEqual({ args, code: a.code, stdout: a.stdout, stderr: a.stderr });
    }
    const simple = await runTool('nestcdctl', '', ['snapshot', 'status', file], { endpoints: '' });
    expect(simple.stdout).toMatch(/^[0-9a-f]+, 21, \d+, \d+(\.\d)? [kM]B\n$/);
  });

  it("reports a nestcd snapshot with the keyspace's HashKV and revision", async () => {
    const nestcd = await startServer('nestcd', { name: 'ref' });
    servers.push(nestcd);
    // values big enough that the snapshot stream spans several messages
    for (const k of ['a', 'b', 'c']) expect((await runTool('etcdctl', nestcd.endpoint, ['put', k, k.repeat(40_000)])).code).toBe(0);
    const file = join(dir, 'nestcd.db');
    expect((await runTool('etcdctl', nestcd.endpoint, ['snapshot', 'save', file])).code).toBe(0);
    const hashkv = JSON.parse((await runTool('etcdctl', nestcd.endpoint, ['endpoint', 'hashkv', '-w', 'json'])).stdout) as Array<{ HashKV: { hash: number } }>;
    const status = await runTool('nestcdctl', '', ['snapshot', 'status', file, '-w', 'json'], { endpoints: '' });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ hash: hashkv[0].HashKV.hash, revision: 4, totalKey: 3 });
  });
});
