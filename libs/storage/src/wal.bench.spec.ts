/**
 * Throughput measurement of fdatasync-batched appends on the real disk (measures, never asserts timing).
 * Skipped unless WAL_BENCH=1:
 *   WAL_BENCH=1 npx jest libs/storage/src/wal.bench.spec.ts
 * Options: WAL_BENCH_DIR (default os.tmpdir()), WAL_BENCH_WRITERS (64), WAL_BENCH_SECONDS (2), WAL_BENCH_SIZE (256).
 */
import * as path from 'node:path';
import * as nodeFs from 'node:fs';
import { FaultyFileSystem } from './fs';
import { Wal } from './wal';
import { entry } from './test-helpers';

const run = process.env.WAL_BENCH === '1' ? describe : describe.skip;

run('WAL throughput (real disk)', () => {
  it('N concurrent writers of small entries', async () => {
    const base = process.env.WAL_BENCH_DIR ?? require('node:os').tmpdir();
    const dir = nodeFs.mkdtempSync(path.join(base, 'nestcd-wal-bench-'));
    const writers = Number(process.env.WAL_BENCH_WRITERS ?? 64);
    const seconds = Number(process.env.WAL_BENCH_SECONDS ?? 2);
    const size = Number(process.env.WAL_BENCH_SIZE ?? 256);
    const ffs = new FaultyFileSystem(); // no faults armed: just counts fdatasyncs
    try {
      for (const n of [1, writers]) {
        const wal = await Wal.create(path.join(dir, `w${n}`), { memberId: 1n, clusterId: 1n }, { fs: ffs });
        const payload = new Uint8Array(size).fill(0x61);
        let next = 1;
        let done = 0;
        const lat: number[] = [];
        const syncs0 = ffs.stats.datasyncs;
        const t0 = performance.now();
        const deadline = t0 + seconds * 1000;
        await Promise.all(
          Array.from({ length: n }, async () => {
            while (performance.now() < deadline) {
              const s = performance.now();
              await wal.save(undefined, [entry(next++, 1, payload)]);
              lat.push(performance.now() - s);
              done++;
            }
          }),
        );
        const secs = (performance.now() - t0) / 1000;
        const syncs = ffs.stats.datasyncs - syncs0;
        lat.sort((a, b) => a - b);
        const p = (q: number): string => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(2);
        console.log(
          `WAL bench: ${n} writers x ${size} B entries for ${secs.toFixed(2)} s on ${base}: ` +
            `${Math.round(done / secs)} entries/s, ${Math.round(syncs / secs)} fdatasyncs/s, ` +
            `${(done / Math.max(1, syncs)).toFixed(1)} entries/fdatasync, latency p50 ${p(0.5)} ms p99 ${p(0.99)} ms`,
        );
        await wal.close();
      }
    } finally {
      nodeFs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
