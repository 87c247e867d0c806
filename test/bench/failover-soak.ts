// npm run soak:failover: the failover time distribution of a 3-member nestcd cluster (real processes on
// loopback). Each round: find the leader, kill -9 it while a client keeps writing, and time until the two
// survivors agree on a new leader (polled over gRPC Maintenance.Status every 10 ms) and until the next write
// succeeds; then restart the old leader and wait until it has caught up. Prints every round and the
// distribution (min, p50, p90, max) against the goal: a new leader within twice the election timeout.
//
// Environment: FAILOVER_RUNS (20), FAILOVER_ELECTION_MS (1000, --election-timeout), FAILOVER_HEARTBEAT_MS
// (100, --heartbeat-interval), FAILOVER_ROUND_SECONDS (30: deadline per round). Every process started here
// is stopped and its data dir removed, on error too.
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '@nestcd/api';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ServerHandle, startNestcd, stopAllServers } from '../support/processes';

const RUNS = Number(process.env.FAILOVER_RUNS ?? 20);
const ELECTION_MS = Number(process.env.FAILOVER_ELECTION_MS ?? 1000);
const HEARTBEAT_MS = Number(process.env.FAILOVER_HEARTBEAT_MS ?? 100);
const ROUND_DEADLINE_MS = Number(process.env.FAILOVER_ROUND_SECONDS ?? 30) * 1000;

type Unary = (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: never) => void) => void;
type Client = grpc.Client & Record<string, Unary>;

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  handle?: ServerHandle;
  maintenance?: Client;
  kv?: Client;
}

const call = <T>(c: Client, method: string, req: object, timeoutMs = 500): Promise<T> =>
  new Promise((resolve, reject) => c[method](req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T))));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'nestcd-failover-soak-'));
  const proto = loadEtcdProto().etcdserverpb;
  const members: Member[] = [];
  for (let i = 1; i <= 3; i++) {
    members.push({ name: `n${i}`, clientPort: await freePort(), peerPort: await freePort(), dataDir: join(root, `n${i}`) });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const start = async (m: Member) => {
    m.handle = await startNestcd({
      name: m.name, dataDir: m.dataDir, clientPort: m.clientPort, peerPort: m.peerPort, readyTimeoutMs: 90000,
      extraArgs: ['--initial-cluster', initialCluster, '--election-timeout', String(ELECTION_MS), '--heartbeat-interval', String(HEARTBEAT_MS)],
    });
    const address = `127.0.0.1:${m.clientPort}`;
    m.maintenance ??= new proto.Maintenance(address, grpc.credentials.createInsecure()) as unknown as Client;
    m.kv ??= new proto.KV(address, grpc.credentials.createInsecure()) as unknown as Client;
  };
  const leaderSeenBy = async (m: Member): Promise<string | undefined> => {
    try {
      const s = await call<{ leader: string }>(m.maintenance!, 'Status', {}, 300);
      return s.leader !== '0' ? String(s.leader) : undefined;
    } catch {
      return undefined;
    }
  };
  const memberId = async (m: Member) => String((await call<{ header: { memberId: string } }>(m.maintenance!, 'Status', {}, 10000)).header.memberId);

  const electMs: number[] = [];
  const writeMs: number[] = [];
  try {
    await Promise.all(members.map(start));
    const ids = new Map<Member, string>();
    for (const m of members) ids.set(m, await memberId(m));
    for (let run = 1; run <= RUNS; run++) {
      const roundDeadline = Date.now() + ROUND_DEADLINE_MS;
      // The leader every member agrees on.
      let leader: Member | undefined;
      while (!leader) {
        if (Date.now() > roundDeadline) throw new Error(`round ${run}: no agreed leader`);
        const seen = await Promise.all(members.map(leaderSeenBy));
        if (seen[0] && seen.every((s) => s === seen[0])) leader = members.find((m) => ids.get(m) === seen[0]);
        else await sleep(50);
      }
      const survivors = members.filter((m) => m !== leader);
      // A client keeps writing through a survivor; note when writes work again after the kill.
      let writing = true;
      let lastOk = 0;
      const writer = (async () => {
        for (let i = 0; writing && i < 100000; i++) {
          try {
            await call(survivors[0].kv!, 'Put', { key: Buffer.from(`soak/${run}`), value: Buffer.from(String(i)) }, 1000);
            lastOk = performance.now();
          } catch {
            await sleep(5);
          }
        }
      })();
      await sleep(200);
      const exited = new Promise<void>((r) => leader!.handle!.process.once('exit', () => r()));
      const killedAt = performance.now();
      leader.handle!.process.kill('SIGKILL');
      await exited;
      let elected: number | undefined;
      while (elected === undefined) {
        if (Date.now() > roundDeadline) throw new Error(`round ${run}: no new leader`);
        const seen = await Promise.all(survivors.map(leaderSeenBy));
        if (seen[0] && seen[0] === seen[1] && seen[0] !== ids.get(leader)) elected = performance.now() - killedAt;
        else await sleep(10);
      }
      while (lastOk <= killedAt + elected - 1 && Date.now() < roundDeadline) await sleep(10);
      writing = false;
      await writer;
      electMs.push(elected);
      writeMs.push(lastOk - killedAt);
      process.stdout.write(`round ${String(run).padStart(2)}: new leader after ${elected.toFixed(0)} ms, writes again after ${(lastOk - killedAt).toFixed(0)} ms\n`);
      // The old leader restarts and catches up before the next round.
      await leader.handle!.stop();
      await start(leader);
    }
  } finally {
    for (const m of members) {
      m.maintenance?.close();
      m.kv?.close();
    }
    await stopAllServers();
    rmSync(root, { recursive: true, force: true });
  }

  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
  const line = (label: string, xs: number[]) =>
    `${label}: min ${Math.min(...xs).toFixed(0)} ms, p50 ${pct(xs, 50).toFixed(0)} ms, p90 ${pct(xs, 90).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
  const goal = 2 * ELECTION_MS;
  const within = electMs.filter((x) => x <= goal).length;
  process.stdout.write(`\n${RUNS} kill -9 failovers (election timeout ${ELECTION_MS} ms, heartbeat ${HEARTBEAT_MS} ms)\n`);
  process.stdout.write(`${line('new leader        ', electMs)}\n${line('writes succeed    ', writeMs)}\n`);
  process.stdout.write(`within 2x the election timeout (${goal} ms): ${within}/${RUNS}\n`);
  const buckets = [250, 500, 750, 1000, 1250, 1500, 2000, Infinity];
  let from = 0;
  for (const to of buckets) {
    const n = electMs.filter((x) => x >= from && x < to).length;
    process.stdout.write(`  ${String(from).padStart(5)}..${to === Infinity ? '   ' : String(to).padStart(5)} ms ${'#'.repeat(n)} ${n}\n`);
    from = to;
  }
  if (within < RUNS) process.exitCode = 1;
}

main().catch((err: Error) => {
  process.stderr.write(`soak:failover failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
