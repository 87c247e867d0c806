/**
 * Crash-recovery acceptance test (issue 4): kill -9 a single-member server at random moments while several
 * clients write, restart it on the same data dir, and check that nothing acknowledged was lost.
 *
 * How to run
 *   npm test                                   part of the full suite: 50 cycles against nestcd
 *   npm run crash                              build, then this file alone (= npx jest test/crash --runInBand)
 *   CRASH_TARGET=etcd npx jest test/crash      the same test against the real etcd 3.4 (validates the harness)
 *   npm run soak:crash                         soak mode: CRASH_CYCLES=500 (any CRASH_CYCLES works)
 *   CRASH_SEED=123 ...                         replay a seed's choices (kill moments, operations, values);
 *                                              timing of real processes still varies from run to run
 * Other knobs: CRASH_CLIENTS (4 concurrent gRPC connections), CRASH_SNAPSHOT_COUNT (--snapshot-count passed
 * to the server, default 1000 so snapshots and WAL replay after a snapshot happen within the run),
 * CRASH_KEEP_DATA=1 (keep the data dir and print its path).
 *
 * One data dir and one member identity (--name, peer URL, --initial-cluster: the peer port is picked once)
 * are kept across all cycles; the client port is fresh each start. Each cycle:
 *   1. start the server on the data dir and wait until `etcdctl endpoint health` succeeds;
 *   2. verify everything recorded so far (below);
 *   3. cycle 0 only: grant one long-lived lease (TTL 3600 s) that lives through the whole run;
 *   4. burst: CRASH_CLIENTS workers, each on its own connection, one request in flight at a time: puts of
 *      256-byte values to keys unique per cycle/worker/seq, some attached to the lease, some txns (compare
 *      create_revision == 0, then put two keys atomically) and some deletes of keys this worker had acknowledged;
 *   5. kill -9 the server 50-400 ms into the burst (seeded), while every worker has a request in flight.
 * After the last kill the server is started once more and verified.
 *
 * Verification after each restart (a linearizable Range over the whole test prefix, paged, plus
 * LeaseTimeToLive --keys), each failure naming the cycle, seed, key, expected and actual:
 *   - every acknowledged put is present with exactly its value, mod_revision = create_revision = the revision
 *     of its response header, version 1 and its lease; keys are unique so nothing supersedes it;
 *   - every acknowledged delete stays deleted;
 *   - an unacknowledged write may or may not have happened, but the first restart after it decides: once a
 *     restart showed it present (or absent) it must stay so with the same value and mod_revision at every
 *     later restart (a read is an acknowledgement too);
 *   - nothing corrupt: no key under the prefix that was never written, no value that was never written to
 *     that key, a txn's two keys both present at the same revision or both absent;
 *   - the store revision never goes back: >= every acknowledged revision and >= the revision after the
 *     previous restart; revisions acknowledged after a restart are above it, strictly increase per worker
 *     and are never handed out twice;
 *   - the lease still exists (TTL > 0) and its attached keys are exactly the present keys carrying it;
 *   - no request fails before the kill (every error must come from the crash).
 * Every loop is bounded by a count and a time limit; afterAll kills the server and removes the temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startServer, stopAllServers, type ServerHandle, type ServerKind } from '../support';
import {
  call,
  connect,
  errText,
  killHard,
  prng,
  type Clients,
  type DeleteRangeResponse,
  type KeyValue,
  type LeaseGrantResponse,
  type LeaseTimeToLiveResponse,
  type PutResponse,
  type RangeResponse,
  type TxnResponse,
} from './harness';

const KIND = (process.env.CRASH_TARGET ?? 'nestcd') as ServerKind;
const CYCLES = Number(process.env.CRASH_CYCLES ?? 50);
const WORKERS = Number(process.env.CRASH_CLIENTS ?? 4);
const SEED = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const SNAPSHOT_COUNT = process.env.CRASH_SNAPSHOT_COUNT ?? '1000';
const KEEP_DATA = !!process.env.CRASH_KEEP_DATA;

const KILL_MIN_MS = 50;
const KILL_MAX_MS = 400;
const MAX_OPS_PER_WORKER = 5_000; // per burst; a burst is cut by the kill long before this
const BURST_LIMIT_MS = 5_000; // per burst, same
const OP_DEADLINE_MS = 5_000;
const VERIFY_DEADLINE_MS = 15_000;
const VALUE_BYTES = 256;
const LEASE_TTL = 3600;
const PREFIX = 'crash/';
const PREFIX_END = 'crash0'; // '/' + 1
const MAX_REPORTED = 25;

if (KIND !== 'etcd' && KIND !== 'nestcd') throw new Error(`CRASH_TARGET must be etcd or nestcd, not ${KIND}`);
if (!Number.isInteger(CYCLES) || CYCLES < 1) throw new Error(`CRASH_CYCLES must be a positive integer, not ${process.env.CRASH_CYCLES}`);

/** What the test knows about one key (every key is written by exactly one put or one txn, and deleted at most once). */
interface KeyRecord {
  key: string;
  value: string;
  lease: string; // '0' when not attached
  origin: string; // 'put' | 'lease put' | 'txn' plus cycle/worker/seq, for messages
  /**
   * pending: in flight; acked: response received (rev = its header revision); maybe: the call failed in the
   * crash; present / absent: a maybe that a restart resolved (present: rev = the mod_revision seen then).
   */
  put: 'pending' | 'acked' | 'maybe' | 'present' | 'absent';
  rev?: number;
  /** The other key of the same txn. */
  partner?: string;
  /** applied: a maybe delete that a restart showed done; undone: one that a restart showed not done. */
  del?: 'pending' | 'acked' | 'maybe' | 'applied';
  delRev?: number;
  delUndone?: boolean;
  err?: string;
}

interface CycleLog {
  cycle: number;
  killAtMs?: number;
  readyMs: number;
  acked: number;
  maybe: number;
}

describe(`crash recovery: kill -9 during writes (${KIND})`, () => {
  let root: string | undefined;
  let server: ServerHandle | undefined;
  let clients: Clients[] = [];

  afterAll(async () => {
    for (const c of clients) c.close();
    clients = [];
    if (server) await killHard(server).catch(() => undefined);
    await stopAllServers();
    if (root) {
      if (KEEP_DATA) process.stderr.write(`crash test: data kept in ${root}\n`);
      else rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);

  it(
    `every acknowledged write survives ${CYCLES} kill -9 cycles (seed=${SEED}, target=${KIND})`,
    async () => {
      root = mkdtempSync(join(tmpdir(), `crash-${KIND}-`));
      const dataDir = join(root, 'data');
      const peerPort = await freePort();
      const rnd = prng(SEED);
      const records = new Map<string, KeyRecord>();
      const revOwner = new Map<number, string>(); // acknowledged revision -> the write that got it
      let maxAckedRev = 0;
      let lastRestartRev = 0;
      let leaseId = '';
      const log: CycleLog[] = [];
      const started = Date.now();

      const where = (cycle: number) => `cycle ${cycle}/${CYCLES} (seed=${SEED}, target=${KIND}, data dir ${dataDir})`;
      const fail = (cycle: number, what: string, problems: string[]): never => {
        const shown = problems.slice(0, MAX_REPORTED).map((p) => `  - ${p}`).join('\n');
        const more = problems.length > MAX_REPORTED ? `\n  ... and ${problems.length - MAX_REPORTED} more` : '';
        const tail = server ? `\nserver log tail:\n${server.logs().slice(-3000).replace(/\x1b\[[0-9;]*m/g, '')}` : '';
        throw new Error(`${where(cycle)}: ${what}: ${problems.length} problem(s)\n${shown}${more}${tail}`);
      };

      for (let cycle = 0; cycle <= CYCLES; cycle++) {
        // 1. (re)start on the same data dir, as the same member
        const t0 = Date.now();
        try {
          server = await startServer(KIND, {
            name: 'crash',
            dataDir,
            peerPort,
            readyTimeoutMs: 30_000,
            extraArgs: ['--snapshot-count', SNAPSHOT_COUNT],
          });
        } catch (err) {
          server = undefined;
          fail(cycle, 'the server did not come back after kill -9', [(err as Error).message]);
        }
        const srv = server!;
        const readyMs = Date.now() - t0;
        const target = `127.0.0.1:${srv.clientPort}`;
        const admin = connect(target);
        clients.push(admin);

        // 2. verify what the previous cycles recorded
        const restartRev = await verify(cycle, admin);

        if (cycle === CYCLES) {
          log.push({ cycle, readyMs, acked: 0, maybe: 0 });
          break;
        }

        // 3. the long-lived lease
        if (cycle === 0) {
          const g = await call<LeaseGrantResponse>(admin.lease, 'LeaseGrant', { TTL: LEASE_TTL, ID: 0 }, OP_DEADLINE_MS).catch((e) =>
            fail(cycle, 'LeaseGrant', [errText(e)]),
          );
          if (g.error || !(Number(g.TTL) > 0)) fail(cycle, 'LeaseGrant', [`answered ${JSON.stringify(g)}`]);
          leaseId = g.ID;
        }

        // 4 + 5. concurrent writes, kill -9 in the middle
        const killAtMs = KILL_MIN_MS + Math.floor(rnd() * (KILL_MAX_MS - KILL_MIN_MS + 1));
        const workerSeeds = Array.from({ length: WORKERS }, () => Math.floor(rnd() * 2 ** 32));
        const ctx = { killed: false, stop: false, problems: [] as string[], acked: 0, maybe: 0 };
        const workerClients = workerSeeds.map(() => connect(target));
        clients.push(...workerClients);
        const burstStart = Date.now();
        const killer = new Promise<void>((resolve) => {
          setTimeout(() => {
            ctx.killed = true;
            ctx.stop = true;
            srv.process.kill('SIGKILL');
            resolve();
          }, killAtMs);
        });
        await Promise.all(workerSeeds.map((s, w) => worker(cycle, w, s, workerClients[w], restartRev, ctx)));
        const burstEndedBeforeKill = !ctx.killed;
        await killer;
        await killHard(srv);
        server = undefined;
        for (const c of [admin, ...workerClients]) c.close();
        clients = [];
        if (burstEndedBeforeKill) {
          ctx.problems.push(`the burst ended ${Date.now() - burstStart} ms in, before the kill at ${killAtMs} ms (nothing was in flight)`);
        }
        if (ctx.problems.length) fail(cycle, `writes before the kill at ${killAtMs} ms`, ctx.problems);
        log.push({ cycle, killAtMs, readyMs, acked: ctx.acked, maybe: ctx.maybe });
      }

      // A one-line summary (shown by jest): what was exercised.
      const acked = log.reduce((n, c) => n + c.acked, 0);
      const maybe = log.reduce((n, c) => n + c.maybe, 0);
      const resolved = [...records.values()];
      const survived = resolved.filter((r) => r.put === 'present').length;
      const vanished = resolved.filter((r) => r.put === 'absent').length;
      const ready = log.map((c) => c.readyMs).sort((a, b) => a - b);
      console.log(
        `crash test (${KIND}, seed ${SEED}): ${CYCLES} kill -9 cycles in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
          `${acked} acknowledged writes, ${maybe} interrupted (${survived} turned out applied, ${vanished} not); ` +
          `${records.size} keys tracked, final revision ${lastRestartRev}; ` +
          `restart-to-ready p50 ${ready[Math.floor(ready.length / 2)]} ms, max ${ready[ready.length - 1]} ms`,
      );
      expect(acked).toBeGreaterThan(CYCLES); // the bursts really wrote something

      // ---------------------------------------------------------------------------------------------------

      /** One client: sequential requests on its own connection until the kill (bounded by count and time). */
      async function worker(
        cycle: number,
        w: number,
        seed: number,
        c: Clients,
        restartRev: number,
        ctx: { killed: boolean; stop: boolean; problems: string[]; acked: number; maybe: number },
      ): Promise<void> {
        const r = prng(seed);
        const deletable: KeyRecord[] = [];
        const t0 = Date.now();
        let lastRev = restartRev;
        const onAck = (rev: number, what: string) => {
          if (!(rev > lastRev)) {
            ctx.problems.push(`${what}: acknowledged revision ${rev}, expected > ${lastRev} (the previous revision this worker saw${lastRev === restartRev ? ' / the revision after restart' : ''})`);
          }
          const owner = revOwner.get(rev);
          if (owner !== undefined) ctx.problems.push(`${what}: acknowledged revision ${rev} was already given to ${owner}`);
          revOwner.set(rev, what);
          lastRev = Math.max(lastRev, rev);
          maxAckedRev = Math.max(maxAckedRev, rev);
          ctx.acked++;
        };
        const onError = (err: unknown, what: string): string => {
          ctx.maybe++;
          const text = errText(err);
          if (!ctx.killed) ctx.problems.push(`${what}: failed before the kill: ${text}`);
          return text;
        };

        for (let seq = 0; !ctx.stop && seq < MAX_OPS_PER_WORKER && Date.now() - t0 < BURST_LIMIT_MS; seq++) {
          const base = `${PREFIX}c${String(cycle).padStart(4, '0')}/w${w}/${String(seq).padStart(5, '0')}`;
          const dice = r();
          if (dice < 0.1 && deletable.length > 0) {
            // delete a key this worker had acknowledged
            const rec = deletable.splice(Math.floor(r() * deletable.length), 1)[0];
            const what = `delete ${rec.key} (cycle ${cycle} worker ${w} seq ${seq})`;
            rec.del = 'pending';
            try {
              const res = await call<DeleteRangeResponse>(c.kv, 'DeleteRange', { key: Buffer.from(rec.key) }, OP_DEADLINE_MS);
              rec.del = 'acked';
              rec.delRev = Number(res.header.revision);
              if (res.deleted !== '1') ctx.problems.push(`${what}: expected deleted=1 (the put was acknowledged at revision ${rec.rev}), actual deleted=${res.deleted}`);
              onAck(rec.delRev, what);
            } catch (err) {
              rec.del = 'maybe';
              rec.err = onError(err, what);
            }
          } else if (dice < 0.2) {
            // txn: both keys or neither
            const a = newRecord(`${base}/a`, '0', `txn (cycle ${cycle} worker ${w} seq ${seq})`, r);
            const b = newRecord(`${base}/b`, '0', a.origin, r);
            a.partner = b.key;
            b.partner = a.key;
            const what = `txn ${a.key} + ${b.key}`;
            try {
              const res = await call<TxnResponse>(
                c.kv,
                'Txn',
                {
                  compare: [{ key: Buffer.from(a.key), target: 1 /* CREATE */, result: 0 /* EQUAL */, createRevision: 0 }],
                  success: [a, b].map((x) => ({ requestPut: { key: Buffer.from(x.key), value: Buffer.from(x.value) } })),
                  failure: [],
                },
                OP_DEADLINE_MS,
              );
              if (!res.succeeded) {
                // the keys were never written before: the compare must hold
                ctx.problems.push(`${what}: compare create_revision(${a.key}) == 0 failed on a key never written before`);
                a.put = b.put = 'absent';
              } else {
                a.put = b.put = 'acked';
                a.rev = b.rev = Number(res.header.revision);
                onAck(a.rev, what);
              }
            } catch (err) {
              a.put = b.put = 'maybe';
              a.err = b.err = onError(err, what);
            }
          } else {
            const withLease = dice < 0.35;
            const rec = newRecord(base, withLease ? leaseId : '0', `${withLease ? 'lease put' : 'put'} (cycle ${cycle} worker ${w} seq ${seq})`, r);
            const what = `put ${rec.key}${withLease ? ` --lease=${leaseId}` : ''}`;
            try {
              const res = await call<PutResponse>(
                c.kv,
                'Put',
                { key: Buffer.from(rec.key), value: Buffer.from(rec.value), lease: rec.lease },
                OP_DEADLINE_MS,
              );
              rec.put = 'acked';
              rec.rev = Number(res.header.revision);
              onAck(rec.rev, what);
              deletable.push(rec);
            } catch (err) {
              rec.put = 'maybe';
              rec.err = onError(err, what);
            }
          }
        }
      }

      function newRecord(key: string, lease: string, origin: string, r: () => number): KeyRecord {
        if (records.has(key)) throw new Error(`test bug: key ${key} written twice`);
        // a value that says where it came from, padded with seeded noise to VALUE_BYTES
        let value = `${key}|${origin}|`;
        const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
        while (value.length < VALUE_BYTES) value += alphabet[Math.floor(r() * alphabet.length)];
        value = value.slice(0, VALUE_BYTES);
        const rec: KeyRecord = { key, value, lease, origin, put: 'pending' };
        records.set(key, rec);
        return rec;
      }

      /** Everything under PREFIX after a restart, checked against the records. Returns the store revision. */
      async function verify(cycle: number, c: Clients): Promise<number> {
        const problems: string[] = [];
        const first: string[] = []; // revision and lease problems: reported before the per-key ones
        // a linearizable range over the prefix, in pages (bounded: records / page size + 2 pages)
        const seen = new Map<string, KeyValue>();
        let rev = 0;
        let from = PREFIX;
        const maxPages = Math.ceil(records.size / 1000) + 2;
        for (let page = 0; ; page++) {
          if (page >= maxPages) fail(cycle, 'range after restart', [`more than ${maxPages} pages of 1000 keys under ${PREFIX} (only ${records.size} keys were ever written)`]);
          const res = await call<RangeResponse>(
            c.kv,
            'Range',
            { key: Buffer.from(from), rangeEnd: Buffer.from(PREFIX_END), limit: 1000 },
            VERIFY_DEADLINE_MS,
          ).catch((e) => fail(cycle, 'range after restart', [errText(e)]));
          if (page === 0) rev = Number(res.header.revision);
          for (const kv of res.kvs) seen.set(kv.key.toString('utf8'), kv);
          if (!res.more || res.kvs.length === 0) break;
          from = `${res.kvs[res.kvs.length - 1].key.toString('utf8')}\0`;
        }

        // the revision never goes back
        if (rev < maxAckedRev) first.push(`store revision ${rev} after restart is below the highest acknowledged revision ${maxAckedRev} (${revOwner.get(maxAckedRev)})`);
        if (rev < lastRestartRev) first.push(`store revision ${rev} after restart is below the revision ${lastRestartRev} seen after the previous restart`);

        // every key present: written by us, with a value we wrote, consistent with what we know
        for (const [key, kv] of seen) {
          const rec = records.get(key);
          const actual = `value ${JSON.stringify(preview(kv.value))} (${kv.value.length} B) mod_revision ${kv.modRevision} create_revision ${kv.createRevision} version ${kv.version} lease ${kv.lease}`;
          if (!rec) {
            problems.push(`key ${key}: expected absent (never written), actual present with ${actual}`);
            continue;
          }
          const expected = `value ${JSON.stringify(preview(rec.value))} (${rec.value.length} B) from ${rec.origin}`;
          if (!kv.value.equals(Buffer.from(rec.value))) {
            problems.push(`key ${key}: corrupt: expected ${expected}, actual ${actual}; ${firstDiff(Buffer.from(rec.value), kv.value)}`);
            continue;
          }
          if (rec.del === 'acked' || rec.del === 'applied') {
            problems.push(`key ${key}: expected deleted (delete ${rec.del === 'acked' ? `acknowledged at revision ${rec.delRev}` : 'seen done after an earlier restart'}), actual present with ${actual}`);
            continue;
          }
          if (rec.put === 'absent') {
            problems.push(`key ${key}: expected absent (an interrupted ${rec.origin} that an earlier restart showed not applied), actual present with ${actual}`);
            continue;
          }
          const modRev = Number(kv.modRevision);
          if (rec.put === 'maybe') {
            rec.put = 'present'; // decided now, must hold from here on
            rec.rev = modRev;
          }
          if (rec.put === 'acked' || rec.put === 'present') {
            const how = rec.put === 'acked' ? 'acknowledged' : 'seen after an earlier restart';
            if (modRev !== rec.rev || Number(kv.createRevision) !== rec.rev || kv.version !== '1') {
              problems.push(`key ${key}: expected mod_revision = create_revision = ${rec.rev} (${how}), version 1; actual ${actual}`);
            }
          }
          if (kv.lease !== rec.lease) problems.push(`key ${key}: expected lease ${rec.lease}, actual ${actual}`);
          if (modRev > rev) problems.push(`key ${key}: mod_revision ${modRev} above the store revision ${rev}`);
          if (rec.del === 'maybe') {
            rec.del = undefined; // the interrupted delete did not happen: the key stays
            rec.delUndone = true;
          }
        }

        // every key absent: allowed only if we never knew it present
        for (const rec of records.values()) {
          if (seen.has(rec.key)) continue;
          if (rec.del === 'acked' || rec.del === 'applied' || rec.put === 'absent') continue;
          if (rec.del === 'maybe') {
            rec.del = 'applied';
            continue;
          }
          if (rec.put === 'maybe') {
            rec.put = 'absent';
            continue;
          }
          if (rec.put === 'acked') {
            problems.push(`key ${rec.key}: lost: expected value ${JSON.stringify(preview(rec.value))} at mod_revision ${rec.rev} (acknowledged ${rec.origin}), actual absent`);
          } else if (rec.put === 'present') {
            problems.push(`key ${rec.key}: lost: expected value ${JSON.stringify(preview(rec.value))} at mod_revision ${rec.rev} (${rec.origin}, interrupted but present after an earlier restart), actual absent`);
          } else {
            problems.push(`key ${rec.key}: test bug: state ${rec.put} after a burst`);
          }
        }

        // txns are atomic
        for (const rec of records.values()) {
          if (!rec.partner || rec.key > rec.partner) continue;
          const [a, b] = [seen.get(rec.key), seen.get(rec.partner)];
          if (!!a !== !!b) {
            problems.push(`txn ${rec.key} + ${rec.partner} (${rec.origin}): torn: expected both keys or neither, actual only ${a ? rec.key : rec.partner} present`);
          } else if (a && b && a.modRevision !== b.modRevision) {
            problems.push(`txn ${rec.key} + ${rec.partner}: expected one mod_revision, actual ${a.modRevision} and ${b.modRevision}`);
          }
        }

        // the lease and its keys
        if (leaseId) {
          const withLease = [...seen.entries()].filter(([, kv]) => kv.lease === leaseId).map(([k]) => k).sort();
          try {
            const ttl = await call<LeaseTimeToLiveResponse>(c.lease, 'LeaseTimeToLive', { ID: leaseId, keys: true }, VERIFY_DEADLINE_MS);
            if (!(Number(ttl.TTL) > 0)) {
              first.push(`lease ${leaseId} (granted in cycle 0 with TTL ${LEASE_TTL}): expected TTL > 0, actual TTL ${ttl.TTL} (grantedTTL ${ttl.grantedTTL}, ${ttl.keys.length} keys)`);
            } else {
              const attached = ttl.keys.map((k) => k.toString('utf8')).sort();
              const setA = new Set(attached);
              const setW = new Set(withLease);
              const missing = withLease.filter((k) => !setA.has(k));
              const extra = attached.filter((k) => !setW.has(k));
              if (missing.length || extra.length) {
                first.push(
                  `lease ${leaseId}: expected its ${withLease.length} keys present with lease=${leaseId}, actual ${attached.length} attached keys; ` +
                    `missing ${JSON.stringify(missing.slice(0, 5))}${missing.length > 5 ? ` (+${missing.length - 5})` : ''}, ` +
                    `unexpected ${JSON.stringify(extra.slice(0, 5))}${extra.length > 5 ? ` (+${extra.length - 5})` : ''}`,
                );
              }
            }
          } catch (err) {
            first.push(`lease ${leaseId}: LeaseTimeToLive failed: ${errText(err)}`);
          }
        }

        if (first.length || problems.length) {
          const lost = problems.filter((p) => p.includes(': lost: ')).length;
          const counts = lost ? [`${lost} acknowledged (or already observed) key(s) lost`] : [];
          fail(cycle, 'verification after restart', [...counts, ...first, ...problems]);
        }
        lastRestartRev = rev;
        return rev;
      }
    },
    // generous: ~2-3 s per cycle on a busy 2-core machine plus start-up; the test itself bounds every wait
    60_000 + CYCLES * 10_000,
  );
});

function preview(v: Buffer | string): string {
  const s = typeof v === 'string' ? v : v.toString('utf8');
  return s.length > 48 ? `${s.slice(0, 48)}...` : s;
}

function firstDiff(expected: Buffer, actual: Buffer): string {
  let i = 0;
  while (i < expected.length && i < actual.length && expected[i] === actual[i]) i++;
  const at = (b: Buffer) => (i < b.length ? JSON.stringify(b.subarray(i, i + 16).toString('latin1')) : 'end of value');
  return `first difference at byte ${i}: expected ${at(expected)}, actual ${at(actual)}`;
}
