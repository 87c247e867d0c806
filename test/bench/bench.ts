// npm run bench: puts/s and ranges/s over gRPC with 1 and 64 concurrent clients, against nestcd and the real
// etcd started side by side on loopback, same client code, same machine. Prints both and the ratio.
// Every loop is bounded by an operation count and a time limit. BENCH_MEMBERS=3 (`npm run bench:cluster`) runs
// a 3-member cluster of each kind instead, the clients spread over the three members. BENCH_ROUNDS repeats every
// workload (both kinds take turns) and reports the median; BENCH_ONLY=put picks the workloads whose names contain
// that text. In a cluster a single client talks to the leader, so both kinds pay for the same path (a follower
// would add a forwarding hop to every put and a ReadIndex round to every linearizable read). BENCH_CLIENT=h2
// sends the same calls through a lean gRPC client on node:http2 instead of grpc-js, which costs the client about
// a third less CPU per call, so the servers rather than the client's one thread set the pace (grpc-js, the
// default, is what Node applications use).
import * as http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '@nestcd/api';
import PQueue from 'p-queue';
import { freePort, ServerHandle, ServerKind, startServer } from '../support/processes';

const OPS = Number(process.env.BENCH_OPS ?? 20000);
const TIME_LIMIT_MS = Number(process.env.BENCH_SECONDS ?? 20) * 1000;
const VALUE = Buffer.alloc(256, 'v');
const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 1);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
const CLIENT = process.env.BENCH_CLIENT === 'h2' ? 'h2' : 'grpc-js';
/** untimed operations (each many-client workload in turn) each kind serves before the first round: measure warm servers
 * and a warm client, not a JIT compiler and heaps still growing (the first round otherwise runs noticeably slower) */
const WARMUP_OPS = Math.max(0, Number(process.env.BENCH_WARMUP_OPS ?? 4000));
const ONLY = process.env.BENCH_ONLY ?? '';

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

interface Target { name: ServerKind; servers: ServerHandle[]; endpoints: string[]; leader: string }

/**
 * Fresh members of either kind on free loopback ports, ready to serve (test/support starts both alike): one, or
 * MEMBERS founding members of one cluster started together (each is ready once the cluster has a leader).
 */
async function start(name: ServerKind): Promise<Target> {
  if (MEMBERS <= 1) {
    const server = await startServer(name, { name: 'bench' });
    const endpoint = `127.0.0.1:${server.clientPort}`;
    return { name, servers: [server], endpoints: [endpoint], leader: endpoint };
  }
  const members = [];
  for (let i = 0; i < MEMBERS; i++) members.push({ name: `bench${i}`, clientPort: await freePort(), peerPort: await freePort() });
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const started = await Promise.allSettled(members.map((m) => startServer(name, {
    name: m.name, clientPort: m.clientPort, peerPort: m.peerPort, readyTimeoutMs: 60000,
    extraArgs: ['--initial-cluster', initialCluster, '--initial-cluster-token', `bench-${name}`],
  })));
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(servers.map((x) => x.stop(0)));
    throw failed.reason;
  }
  const endpoints = servers.map((x) => `127.0.0.1:${x.clientPort}`);
  return { name, servers, endpoints, leader: await findLeader(endpoints) };
}

/** The endpoint whose member is the leader, by Maintenance.Status (leader ID equals the member's own ID). */
async function findLeader(endpoints: string[]): Promise<string> {
  const Maintenance = loadEtcdProto().etcdserverpb.Maintenance;
  for (const endpoint of endpoints) {
    const client = new Maintenance(endpoint, grpc.credentials.createInsecure());
    try {
      const status = (await call(client as never, 'Status', {})) as { leader: string; header: { memberId: string } };
      if (status.leader === status.header.memberId) return endpoint;
    } finally {
      client.close();
    }
  }
  throw new Error(`no leader among ${endpoints.join(', ')}`);
}

async function stop(t: Target): Promise<void> {
  await Promise.all(t.servers.map((x) => x.stop(0)));
}

type KvClient = Record<string, Unary> & { close(): void };

function kvClient(endpoint: string): KvClient {
  const KV = loadEtcdProto().etcdserverpb.KV;
  return CLIENT === 'h2' ? h2KvClient(endpoint, KV.service) : (new KV(endpoint, grpc.credentials.createInsecure()) as never);
}

/**
 * The KV calls over one node:http2 session: each call one stream with a length-prefixed request, answered by its
 * grpc-status trailer (the response message is not decoded; a failure status rejects the call).
 */
function h2KvClient(endpoint: string, service: grpc.ServiceDefinition): KvClient {
  const session = http2.connect(`http://${endpoint}`);
  session.on('error', () => undefined); // every call in flight fails on its own stream
  const client: KvClient = { close: () => session.close() };
  for (const [name, def] of Object.entries(service)) {
    client[name] = (req, cb) => {
      const message = def.requestSerialize(req);
      const body = Buffer.allocUnsafe(5 + message.length);
      body[0] = 0;
      body.writeUInt32BE(message.length, 1);
      message.copy(body, 5);
      const stream = session.request({ ':method': 'POST', ':path': def.path, 'content-type': 'application/grpc', te: 'trailers' });
      let status: string | undefined;
      let details = '';
      const settle = (headers: http2.IncomingHttpHeaders): void => {
        if (headers['grpc-status'] !== undefined) status = String(headers['grpc-status']);
        if (headers['grpc-message'] !== undefined) details = decodeURIComponent(String(headers['grpc-message']));
      };
      stream.on('response', settle); // a trailers-only answer carries its status here
      stream.on('trailers', settle);
      stream.on('data', () => undefined);
      stream.on('error', (err) => cb(Object.assign(err, { code: grpc.status.UNAVAILABLE, details: err.message, metadata: new grpc.Metadata() }), undefined));
      stream.on('end', () => {
        if (status === '0') cb(null, undefined);
        else cb(Object.assign(new Error(`${def.path}: grpc-status ${status} ${details}`), { code: Number(status ?? grpc.status.UNKNOWN), details, metadata: new grpc.Metadata() }), undefined);
      });
      stream.end(body);
    };
  }
  return client;
}

function call(client: Record<string, Unary>, method: string, req: object): Promise<unknown> {
  return new Promise((resolve, reject) => client[method](req, (err, res) => (err ? reject(err) : resolve(res))));
}

/** cpuUsPerOp: the servers' CPU per operation; clientCpuUsPerOp: this process's (the client's), which shares the machine */
interface Result { opsPerSec: number; p50: number; p99: number; ops: number; cpuUsPerOp: number; clientCpuUsPerOp: number; latencies: number[] }

/**
 * CPU time (user + system, all threads) the server processes have used so far, in µs, from /proc/PID/stat
 * (Linux; USER_HZ is 100 there). NaN where it cannot be read. On 2 cores shared with the client, server CPU per
 * operation is what throughput is traded against, so the table shows it beside op/s.
 */
function serverCpuUs(pids: Array<number | undefined>): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      total += (Number(fields[11]) + Number(fields[12])) * 10_000;
    } catch {
      return NaN;
    }
  }
  return total;
}

/** Runs `op` OPS times (or until the time limit) with `concurrency` requests in flight over up to 8 channels per
 * endpoint (requests go round-robin over the channels, so over the members too). */
async function measure(endpoints: string[], pids: Array<number | undefined>, concurrency: number, op: (c: Record<string, Unary>, i: number) => Promise<unknown>, ops = OPS): Promise<Result> {
  const clients = Array.from({ length: Math.min(concurrency, 8) * endpoints.length }, (_, i) => kvClient(endpoints[i % endpoints.length]));
  const queue = new PQueue({ concurrency });
  const latencies: number[] = [];
  const cpuBefore = serverCpuUs(pids);
  const clientCpuBefore = process.cpuUsage();
  const started = performance.now();
  let issued = 0;
  while (issued < ops && performance.now() - started < TIME_LIMIT_MS) {
    const i = issued++;
    await queue.onSizeLessThan(concurrency);
    void queue.add(async () => {
      const t0 = performance.now();
      await op(clients[i % clients.length], i);
      latencies.push(performance.now() - t0);
    });
  }
  await queue.onIdle();
  const elapsed = (performance.now() - started) / 1000;
  const cpuUsPerOp = (serverCpuUs(pids) - cpuBefore) / latencies.length;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const clientCpuUsPerOp = (clientCpu.user + clientCpu.system) / latencies.length;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  return { opsPerSec: latencies.length / elapsed, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), ops: latencies.length, cpuUsPerOp, clientCpuUsPerOp, latencies };
}

const allWorkloads: { name: string; concurrency: number; op: (c: Record<string, Unary>, i: number) => Promise<unknown> }[] = [
  { name: 'put, 1 client', concurrency: 1, op: (c, i) => call(c, 'Put', { key: Buffer.from(`bench/${i % 1000}`), value: VALUE }) },
  { name: 'put, 64 clients', concurrency: 64, op: (c, i) => call(c, 'Put', { key: Buffer.from(`bench/${i % 1000}`), value: VALUE }) },
  { name: 'range (linearizable), 1 client', concurrency: 1, op: (c, i) => call(c, 'Range', { key: Buffer.from(`bench/${i % 1000}`) }) },
  { name: 'range (linearizable), 64 clients', concurrency: 64, op: (c, i) => call(c, 'Range', { key: Buffer.from(`bench/${i % 1000}`) }) },
  { name: 'range (serializable), 64 clients', concurrency: 64, op: (c, i) => call(c, 'Range', { key: Buffer.from(`bench/${i % 1000}`), serializable: true }) },
];
const workloads = allWorkloads.filter((w) => w.name.includes(ONLY));

async function main(): Promise<void> {
  // Both kinds run side by side for the whole run and take turns per workload (the first to go alternates by
  // round), so a drift of the machine during the run weighs on both alike; BENCH_ROUNDS > 1 reports medians.
  const targets: Target[] = [];
  const runs = new Map<string, Map<string, Result[]>>([['etcd', new Map()], ['nestcd', new Map()]]);
  try {
    for (const name of ['etcd', 'nestcd'] as const) targets.push(await start(name));
    if (WARMUP_OPS > 0) {
      for (const target of targets) {
        for (const w of allWorkloads.filter((x) => x.concurrency > 1)) {
          await measure(target.endpoints, [], w.concurrency, w.op, WARMUP_OPS);
        }
      }
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const w of workloads) {
        const order = round % 2 === 0 ? targets : [...targets].reverse();
        for (const target of order) {
          // A single client talks to the leader; many clients spread over all the members.
          const endpoints = w.concurrency === 1 ? [target.leader] : target.endpoints;
          const byWorkload = runs.get(target.name)!;
          const r = await measure(endpoints, target.servers.map((s) => s.pid), w.concurrency, w.op);
          byWorkload.set(w.name, [...(byWorkload.get(w.name) ?? []), r]);
          process.stderr.write(`round ${round + 1}/${ROUNDS} ${target.name}: ${w.name}: ${r.opsPerSec.toFixed(0)} op/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, server CPU ${r.cpuUsPerOp.toFixed(0)} µs/op, client CPU ${r.clientCpuUsPerOp.toFixed(0)} µs/op\n`);
        }
      }
    }
  } finally {
    await Promise.all(targets.map(stop));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const summary = (rs: Result[]): Omit<Result, 'latencies'> => ({ opsPerSec: median(rs.map((r) => r.opsPerSec)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), ops: median(rs.map((r) => r.ops)), cpuUsPerOp: median(rs.map((r) => r.cpuUsPerOp)), clientCpuUsPerOp: median(rs.map((r) => r.clientCpuUsPerOp)) });
  const f = (n: number) => n.toFixed(0).padStart(7);
  const ms = (n: number) => n.toFixed(2).padStart(6);
  const shape = MEMBERS <= 1 ? 'one member' : `${MEMBERS}-member clusters (1 client: the leader; 64 clients: spread over all)`;
  const rounds = ROUNDS > 1 ? `, median of ${ROUNDS} rounds` : '';
  console.log(`\n${shape}, 256-byte values, ${OPS} ops per workload (or ${TIME_LIMIT_MS / 1000} s)${rounds}, ${CLIENT === 'h2' ? 'node:http2 gRPC' : 'grpc-js'} client, loopback;`);
  console.log('server CPU: user + system time of all server processes per operation; client CPU: the same for this client process\n');
  console.log(`${'workload'.padEnd(34)} ${'etcd op/s'.padStart(10)} ${'p50/p99 ms'.padStart(15)} ${'nestcd op/s'.padStart(12)} ${'p50/p99 ms'.padStart(15)}  ratio  CPU µs/op etcd/nestcd  client CPU µs/op etcd/nestcd`);
  for (const w of workloads) {
    const e = summary(runs.get('etcd')!.get(w.name)!);
    const n = summary(runs.get('nestcd')!.get(w.name)!);
    console.log(`${w.name.padEnd(34)} ${f(e.opsPerSec).padStart(10)} ${`${ms(e.p50)}/${ms(e.p99)}`.padStart(15)} ${f(n.opsPerSec).padStart(12)} ${`${ms(n.p50)}/${ms(n.p99)}`.padStart(15)}  ${(n.opsPerSec / e.opsPerSec).toFixed(2)}x  ${`${e.cpuUsPerOp.toFixed(0)}/${n.cpuUsPerOp.toFixed(0)}`.padStart(9)}  ${`${e.clientCpuUsPerOp.toFixed(0)}/${n.clientCpuUsPerOp.toFixed(0)}`.padStart(9)}`);
  }
  if (ROUNDS > 1) {
    // A round's p99 of 20,000 calls at 64 clients rests on a handful of pauses that each hold up every call in
    // flight (mostly the client's own GC), so it swings by a third from round to round. All rounds' calls
    // pooled, and the count of rounds each kind had the lower p99, say more than a median of rounds.
    console.log(`\np99 of all ${ROUNDS} rounds' operations pooled, and rounds with the lower p99 (same round, both kinds):\n`);
    console.log(`${'workload'.padEnd(34)} ${'etcd p99 ms'.padStart(12)} ${'nestcd p99 ms'.padStart(14)}  rounds lower etcd/nestcd`);
    for (const w of workloads) {
      const e = runs.get('etcd')!.get(w.name)!;
      const n = runs.get('nestcd')!.get(w.name)!;
      const nestcdLower = n.filter((r, i) => r.p99 < e[i].p99).length;
      const etcdLower = e.filter((r, i) => r.p99 < n[i].p99).length;
      console.log(`${w.name.padEnd(34)} ${ms(pooledP99(e)).padStart(12)} ${ms(pooledP99(n)).padStart(14)}  ${`${etcdLower}/${nestcdLower}`.padStart(24)}`);
    }
  }
}

/** The value at fraction p of sorted values. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** The 99th percentile of every operation of every round together. */
function pooledP99(rs: Result[]): number {
  return percentile(rs.flatMap((r) => r.latencies).sort((a, b) => a - b), 0.99);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
