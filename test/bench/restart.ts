// npm run bench:restart: restart of a member holding RESTART_KEYS keys (default 1,000,000) of 256-byte values,
// nestcd beside the real etcd 3.4 in the same run, same client code, same machine (issue 4's acceptance item).
// For each server: start a fresh single member, load the keys with 128-put Txns, read RSS from /metrics (and
// `ps`), stop it (SIGTERM, then a kill -9 round), restart on the same data dir and time spawn -> first
// serializable Range, spawn -> a correct linearizable Range of a key written before the restart, then RSS
// after restart and a count-only Range proving every key is still there. Every loop is bounded by a count and
// a deadline; every process started here is killed and every temp dir removed, on error too.
//
// Environment: RESTART_KEYS (1000000), RESTART_TXN_OPS (128, etcd's --max-txn-ops), RESTART_CONCURRENCY (16),
// RESTART_LOAD_SECONDS (600: load deadline per server), RESTART_SERVE_SECONDS (300: restart deadline),
// RESTART_KILL9 (1: also measure a kill -9 restart), RESTART_TARGETS (etcd,nestcd), RESTART_SNAPSHOT_COUNT
// (unset: the servers' default 100000; when set, --snapshot-count for both servers),
// RESTART_NESTCD_NODE_OPTIONS (NODE_OPTIONS for the nestcd child only, e.g. heap limits), RESTART_NESTCD_NODE_ARGS
// (node flags NODE_OPTIONS does not take, e.g. `--cpu-prof --cpu-prof-dir=DIR`, put on node's command line),
// RESTART_KEEP_LOGS (0: when 1, copy each server's log out of the temp dir before it is deleted).
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '@nestcd/api';
import PQueue from 'p-queue';
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdBinary, freePort, nestcdBinary, serverArgs } from '../support/processes';

const KEYS = Number(process.env.RESTART_KEYS ?? 1_000_000);
const TXN_OPS = Number(process.env.RESTART_TXN_OPS ?? 128);
const CONCURRENCY = Number(process.env.RESTART_CONCURRENCY ?? 16);
const LOAD_DEADLINE_MS = Number(process.env.RESTART_LOAD_SECONDS ?? 600) * 1000;
const SERVE_DEADLINE_MS = Number(process.env.RESTART_SERVE_SECONDS ?? 300) * 1000;
const KILL9 = (process.env.RESTART_KILL9 ?? '1') !== '0';
const TARGETS = (process.env.RESTART_TARGETS ?? 'etcd,nestcd').split(',').map((s) => s.trim()) as Name[];
const KEEP_LOGS = process.env.RESTART_KEEP_LOGS === '1';
const SNAPSHOT_COUNT = process.env.RESTART_SNAPSHOT_COUNT; // passed to both servers when set
const VALUE_BYTES = 256;
const PREFIX = 'restart/';
const PREFIX_END = 'restart0'; // '/' + 1

type Name = 'etcd' | 'nestcd';
type Unary = (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type Kv = grpc.Client & Record<string, Unary>;

// ---------------------------------------------------------------------------------------------------------------
// Data: generated, never held. Key i is restart/%08d; its value is 256 bytes derived from i, so any read checks.

const keyOf = (i: number): Buffer => Buffer.from(`${PREFIX}${String(i).padStart(8, '0')}`);
function valueOf(i: number): Buffer {
  const v = Buffer.alloc(VALUE_BYTES, 97 + (i % 26));
  v.write(`value-${i}-`, 0, 'latin1');
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

interface Member {
  name: Name;
  dir: string;
  clientPort: number;
  peerPort: number;
  proc?: ChildProcess;
  exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logFile: string;
  spawnedAt: number;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function cleanupSync(): void {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

async function createMember(name: Name): Promise<Member> {
  const dir = mkdtempSync(join(tmpdir(), `bench-restart-${name}-`));
  tempDirs.add(dir);
  return { name, dir, clientPort: await freePort(), peerPort: await freePort(), logFile: join(dir, 'server.log'), spawnedAt: 0 };
}

/** Spawns the member on its data dir (fresh or not), same flags for both servers; output appended to its log. */
function spawnMember(m: Member): void {
  const args = serverArgs({ name: 'bench', dataDir: join(m.dir, 'data'), clientPort: m.clientPort, peerPort: m.peerPort });
  if (SNAPSHOT_COUNT) args.push('--snapshot-count', SNAPSHOT_COUNT);
  const cmd = m.name === 'etcd' ? etcdBinary() : nestcdBinary();
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  if (m.name === 'nestcd' && process.env.RESTART_NESTCD_NODE_OPTIONS) env.NODE_OPTIONS = process.env.RESTART_NESTCD_NODE_OPTIONS;
  const log = openSync(m.logFile, 'a');
  m.spawnedAt = performance.now();
  // Flags NODE_OPTIONS refuses (--cpu-prof, --trace-gc) go on node's own command line.
  const nodeArgs = m.name === 'nestcd' ? (process.env.RESTART_NESTCD_NODE_ARGS ?? '').split(' ').filter(Boolean) : [];
  const proc = nodeArgs.length > 0
    ? spawn(process.execPath, [...nodeArgs, cmd, ...args], { stdio: ['ignore', log, log], env, cwd: m.dir })
    : spawn(cmd, args, { stdio: ['ignore', log, log], env, cwd: m.dir });
  closeSync(log);
  live.add(proc);
  m.proc = proc;
  m.exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    live.delete(proc);
    resolve({ code, signal });
  }));
}

/** Sends `signal`, waits for the exit (SIGKILL after 60 s); returns how long the stop took. */
async function stopMember(m: Member, signal: NodeJS.Signals): Promise<{ ms: number; how: string }> {
  const t0 = performance.now();
  const proc = m.proc!;
  if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${m.name} had already exited (${proc.exitCode ?? proc.signalCode})\n${logTail(m)}`);
  proc.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 60000)));
  const res = await Promise.race([m.exited!, timedOut]);
  clearTimeout(timer);
  if (res === 'timeout') {
    proc.kill('SIGKILL');
    await m.exited;
    return { ms: performance.now() - t0, how: `${signal} ignored for 60 s, SIGKILLed` };
  }
  return { ms: performance.now() - t0, how: res.signal ? `killed by ${res.signal}` : `exit ${res.code}` };
}

function logTail(m: Member, bytes = 4000): string {
  try {
    const size = statSync(m.logFile).size;
    const len = Math.min(bytes, size);
    const buf = Buffer.alloc(len);
    const fd = openSync(m.logFile, 'r');
    readSync(fd, buf, 0, len, size - len);
    closeSync(fd);
    return `--- ${m.name} log tail (${m.logFile}) ---\n${buf.toString('utf8')}\n--- end ---`;
  } catch (err) {
    return `(no log: ${(err as Error).message})`;
  }
}

function assertAlive(m: Member): void {
  const p = m.proc!;
  if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${m.name} exited unexpectedly (${p.exitCode ?? p.signalCode})\n${logTail(m)}`);
}

function duBytes(path: string): number {
  try {
    return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split(/\s/)[0]);
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// gRPC and HTTP

function kvClient(port: number): Kv {
  const KV = loadEtcdProto().etcdserverpb.KV;
  // Short reconnect backoff so a restarted server is noticed within ~50 ms, not grpc's 1 s+ backoff.
  return new KV(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': 20,
    'grpc.min_reconnect_backoff_ms': 20,
    'grpc.max_reconnect_backoff_ms': 50,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  }) as never;
}

function call<T = unknown>(client: Kv, method: string, req: object, timeoutMs = 30000): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T))));
}

function httpGet(port: number, path: string, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`GET ${path}: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

interface Rss { metricsMB: number; psMB: number; lagMaxS?: number }

async function readRss(m: Member): Promise<Rss> {
  const text = await httpGet(m.clientPort, '/metrics');
  const rss = metric(text, 'process_resident_memory_bytes');
  if (rss === undefined) throw new Error(`${m.name}: /metrics has no process_resident_memory_bytes`);
  let psKb = NaN;
  try {
    psKb = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(m.proc!.pid)], { encoding: 'utf8' }).trim());
  } catch {
    /* process gone: reported as NaN */
  }
  return { metricsMB: rss / 2 ** 20, psMB: psKb / 1024, lagMaxS: metric(text, 'nodejs_eventloop_lag_max_seconds') };
}

// ---------------------------------------------------------------------------------------------------------------
// Load

interface LoadResult { keysPerSec: number; seconds: number; txnP50: number; txnP99: number; txnMax: number; slowTxns: number; peakRssMB: number; maxLagS?: number }

async function load(m: Member): Promise<LoadResult> {
  const clients = Array.from({ length: Math.min(CONCURRENCY, 8) }, () => kvClient(m.clientPort));
  const queue = new PQueue({ concurrency: CONCURRENCY });
  const latencies: number[] = [];
  let failure: Error | undefined;
  let peakRssMB = 0;
  let maxLagS: number | undefined;
  let sampling = true;
  let wake: (() => void) | undefined;
  let nextReport = 0;
  // Sample RSS (and, for nestcd, the event loop's max delay since the previous scrape) every 2 s while loading.
  const sampler = (async () => {
    while (sampling) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, 2000);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      if (!sampling) break;
      try {
        const r = await readRss(m);
        peakRssMB = Math.max(peakRssMB, r.metricsMB);
        if (r.lagMaxS !== undefined) maxLagS = Math.max(maxLagS ?? 0, r.lagMaxS);
      } catch {
        /* a slow scrape is not fatal; the load's own errors are */
      }
    }
  })();
  const started = performance.now();
  let seconds = 0;
  try {
    for (let base = 0; base < KEYS && !failure; base += TXN_OPS) {
      if (performance.now() - started > LOAD_DEADLINE_MS) {
        throw new Error(`${m.name}: load deadline (${LOAD_DEADLINE_MS / 1000} s) passed after ${base} of ${KEYS} keys`);
      }
      if (base >= nextReport) {
        const s = (performance.now() - started) / 1000;
        process.stderr.write(`${m.name}: loaded ${base}/${KEYS} keys in ${s.toFixed(1)} s${peakRssMB ? `, RSS peak ${peakRssMB.toFixed(0)} MB` : ''}\n`);
        nextReport += Math.max(TXN_OPS, Math.ceil(KEYS / 10 / TXN_OPS) * TXN_OPS);
      }
      await queue.onSizeLessThan(CONCURRENCY);
      const client = clients[(base / TXN_OPS) % clients.length];
      const n = Math.min(TXN_OPS, KEYS - base);
      void queue.add(async () => {
        const success = Array.from({ length: n }, (_, j) => ({ requestPut: { key: keyOf(base + j), value: valueOf(base + j) } }));
        const t0 = performance.now();
        try {
          await call(client, 'Txn', { compare: [], success, failure: [] }, 60000);
          latencies.push(performance.now() - t0);
        } catch (err) {
          failure ??= new Error(`${m.name}: Txn for keys ${base}..${base + n - 1} failed after ${(performance.now() - t0).toFixed(0)} ms: ${(err as Error).message}`);
        }
      });
    }
    await queue.onIdle();
    seconds = (performance.now() - started) / 1000;
    if (failure) throw failure;
  } catch (err) {
    queue.clear();
    throw err;
  } finally {
    sampling = false;
    wake?.();
    await sampler;
    for (const c of clients) c.close();
  }
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  return {
    keysPerSec: KEYS / seconds, seconds, txnP50: pct(0.5), txnP99: pct(0.99), txnMax: latencies[latencies.length - 1],
    slowTxns: latencies.filter((l) => l > 1000).length, peakRssMB, maxLagS,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Restart

interface RestartResult {
  signal: string;
  stopMs: number;
  stopHow: string;
  serializableS: number;
  linearizableS: number;
  rssAfter: Rss;
  rssAfterCount: Rss;
  countS: number;
}

/** Polls `attempt` every 20 ms until it returns true, failing when the server exits or the deadline passes. */
async function pollUntil(m: Member, what: string, attempt: () => Promise<boolean>): Promise<number> {
  let last = 'no attempt';
  for (;;) {
    assertAlive(m);
    const elapsed = performance.now() - m.spawnedAt;
    if (elapsed > SERVE_DEADLINE_MS) throw new Error(`${m.name}: ${what} not reached ${SERVE_DEADLINE_MS / 1000} s after spawn (last: ${last})\n${logTail(m)}`);
    try {
      if (await attempt()) return (performance.now() - m.spawnedAt) / 1000;
      last = 'wrong answer';
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function countKeys(kv: Kv): Promise<number> {
  const res = await call<{ count: string }>(kv, 'Range', { key: Buffer.from(PREFIX), rangeEnd: Buffer.from(PREFIX_END), countOnly: true }, 120000);
  return Number(res.count);
}

async function restart(m: Member, signal: NodeJS.Signals): Promise<RestartResult> {
  const stop = await stopMember(m, signal);
  process.stderr.write(`${m.name}: stopped with ${signal} in ${stop.ms.toFixed(0)} ms (${stop.how}); restarting\n`);
  spawnMember(m);
  const kv = kvClient(m.clientPort);
  try {
    const probe = keyOf(0);
    const serializableS = await pollUntil(m, 'a serializable Range', async () => {
      await call(kv, 'Range', { key: probe, serializable: true }, 2000);
      return true;
    });
    const checkAt = KEYS - 1; // the last key written before the restart
    const linearizableS = await pollUntil(m, `a correct linearizable Range of key ${checkAt}`, async () => {
      const res = await call<{ kvs: { value: Buffer }[] }>(kv, 'Range', { key: keyOf(checkAt) }, 2000);
      if (res.kvs.length !== 1 || !Buffer.from(res.kvs[0].value).equals(valueOf(checkAt))) {
        throw new Error(`key ${checkAt} read back ${res.kvs.length ? `a wrong value (${Buffer.from(res.kvs[0].value).subarray(0, 24).toString()}...)` : 'as missing'}`);
      }
      return true;
    });
    const rssAfter = await readRss(m);
    // Spot-check a few more keys across the range, then count them all.
    for (const i of [0, Math.floor(KEYS / 3), Math.floor(KEYS / 2), KEYS - 2].filter((i) => i >= 0)) {
      const res = await call<{ kvs: { value: Buffer }[] }>(kv, 'Range', { key: keyOf(i) }, 10000);
      if (res.kvs.length !== 1 || !Buffer.from(res.kvs[0].value).equals(valueOf(i))) throw new Error(`${m.name}: key ${i} lost or wrong after restart`);
    }
    const c0 = performance.now();
    const count = await countKeys(kv);
    const countS = (performance.now() - c0) / 1000;
    if (count !== KEYS) throw new Error(`${m.name}: after ${signal} restart a count-only Range finds ${count} keys, expected ${KEYS}\n${logTail(m)}`);
    const rssAfterCount = await readRss(m);
    return { signal, stopMs: stop.ms, stopHow: stop.how, serializableS, linearizableS, rssAfter, rssAfterCount, countS };
  } finally {
    kv.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------

interface TargetResult { name: Name; load: LoadResult; rssBefore: Rss; dataBytes: number; restarts: RestartResult[] }

async function waitServing(m: Member): Promise<void> {
  const kv = kvClient(m.clientPort);
  try {
    await pollUntil(m, 'first start', async () => {
      await call(kv, 'Range', { key: Buffer.from('ready?') }, 2000);
      return true;
    });
  } finally {
    kv.close();
  }
}

async function runTarget(name: Name): Promise<TargetResult> {
  const m = await createMember(name);
  try {
    spawnMember(m);
    await waitServing(m);
    process.stderr.write(`${name}: serving on 127.0.0.1:${m.clientPort}, loading ${KEYS} keys (${TXN_OPS} puts per Txn, ${CONCURRENCY} in flight)\n`);
    const loaded = await load(m);
    process.stderr.write(`${name}: loaded ${KEYS} keys in ${loaded.seconds.toFixed(1)} s (${loaded.keysPerSec.toFixed(0)} keys/s)\n`);
    const kv = kvClient(m.clientPort);
    try {
      const count = await countKeys(kv);
      if (count !== KEYS) throw new Error(`${name}: after loading, a count-only Range finds ${count} keys, expected ${KEYS}`);
    } finally {
      kv.close();
    }
    const rssBefore = await readRss(m);
    loaded.peakRssMB = Math.max(loaded.peakRssMB, rssBefore.metricsMB);
    const dataBytes = duBytes(join(m.dir, 'data'));
    const restarts: RestartResult[] = [];
    for (const sig of KILL9 ? (['SIGTERM', 'SIGKILL'] as const) : (['SIGTERM'] as const)) {
      const r = await restart(m, sig);
      process.stderr.write(`${name}: ${sig} restart: serializable Range after ${r.serializableS.toFixed(2)} s, linearizable after ${r.linearizableS.toFixed(2)} s, RSS ${r.rssAfter.metricsMB.toFixed(0)} MB\n`);
      restarts.push(r);
    }
    return { name, load: loaded, rssBefore, dataBytes, restarts };
  } catch (err) {
    if (m.proc) (err as Error).message += m.proc.exitCode === null && m.proc.signalCode === null ? `\n${logTail(m)}` : '';
    throw err;
  } finally {
    // A graceful stop (SIGKILL after 60 s) so a profiler in the child (RESTART_NESTCD_NODE_OPTIONS) can write out.
    if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) await stopMember(m, 'SIGTERM');
    if (KEEP_LOGS) copyFileSync(m.logFile, join(tmpdir(), `bench-restart-${name}-${process.pid}.log`));
    rmSync(m.dir, { recursive: true, force: true });
    tempDirs.delete(m.dir);
  }
}

function report(results: TargetResult[]): void {
  const mb = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '?');
  const s = (n: number) => n.toFixed(2);
  console.log(`\nrestart benchmark: ${KEYS} keys x ${VALUE_BYTES} B values, loaded with ${TXN_OPS}-put Txns, ${CONCURRENCY} in flight; ` +
    `single member, loopback, ${SNAPSHOT_COUNT ? `--snapshot-count ${SNAPSHOT_COUNT}` : 'default flags'}\n`);
  const rows: string[][] = [['', 'keys', 'load keys/s', 'data dir MB', 'peak RSS load MB', 'RSS before MB (ps)', 'stop', 'RSS after MB (ps)', 'RSS after count MB', 'to serializable s', 'to linearizable s', 'count s']];
  for (const r of results) {
    for (const x of r.restarts) {
      rows.push([
        `${r.name} ${x.signal}`, String(KEYS), r.load.keysPerSec.toFixed(0), mb(r.dataBytes / 2 ** 20), mb(r.load.peakRssMB),
        `${mb(r.rssBefore.metricsMB)} (${mb(r.rssBefore.psMB)})`, `${(x.stopMs / 1000).toFixed(2)} s`,
        `${mb(x.rssAfter.metricsMB)} (${mb(x.rssAfter.psMB)})`, mb(x.rssAfterCount.metricsMB), s(x.serializableS), s(x.linearizableS), s(x.countS),
      ]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));

  console.log('\nload detail (Txn latency ms: p50 / p99 / max, Txns over 1 s, max event-loop delay from /metrics when exposed):');
  for (const r of results) {
    const l = r.load;
    console.log(`  ${r.name.padEnd(7)} ${l.seconds.toFixed(1)} s  ${l.txnP50.toFixed(1)} / ${l.txnP99.toFixed(1)} / ${l.txnMax.toFixed(1)}  slow ${l.slowTxns}` +
      (l.maxLagS !== undefined ? `  loop delay max ${(l.maxLagS * 1000).toFixed(0)} ms` : ''));
  }
  const e = results.find((r) => r.name === 'etcd');
  const n = results.find((r) => r.name === 'nestcd');
  if (e && n) {
    console.log('\nnestcd / etcd:');
    console.log(`  load keys/s          ${(n.load.keysPerSec / e.load.keysPerSec).toFixed(2)}x`);
    console.log(`  RSS before restart   ${(n.rssBefore.metricsMB / e.rssBefore.metricsMB).toFixed(2)}x`);
    for (let i = 0; i < Math.min(e.restarts.length, n.restarts.length); i++) {
      const [er, nr] = [e.restarts[i], n.restarts[i]];
      console.log(`  ${er.signal.padEnd(7)} RSS after restart ${(nr.rssAfter.metricsMB / er.rssAfter.metricsMB).toFixed(2)}x, ` +
        `time to serializable ${(nr.serializableS / er.serializableS).toFixed(2)}x, time to linearizable ${(nr.linearizableS / er.linearizableS).toFixed(2)}x`);
    }
  }
}

async function main(): Promise<void> {
  if (!Number.isInteger(KEYS) || KEYS < 1) throw new Error(`RESTART_KEYS must be a positive integer, got ${process.env.RESTART_KEYS}`);
  if (!Number.isInteger(TXN_OPS) || TXN_OPS < 1 || TXN_OPS > 128) throw new Error('RESTART_TXN_OPS must be 1..128 (etcd --max-txn-ops)');
  const results: TargetResult[] = [];
  for (const name of TARGETS) {
    if (name !== 'etcd' && name !== 'nestcd') throw new Error(`unknown target ${name}`);
    results.push(await runTarget(name));
  }
  report(results);
}

main().then(() => process.exit(0), (err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
