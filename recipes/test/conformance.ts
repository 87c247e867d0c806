/**
 * The recipes conformance suite: the same behaviour checks against every backend (see support/backends.ts).
 * A test file per backend calls describeConformance(name); `npm run test:recipes` picks one with
 * NESTCD_TEST_BACKEND. Sizes come from the environment so that `npm test` stays small and
 * `npm run test:recipes:stress` runs the full 20 x 50.
 */
import { KvClient } from '@nestcd/client';
import { firstValueFrom, filter as rxFilter, Subscription } from 'rxjs';
import { z } from 'zod';
import { BackendName, startBackend, TestBackend } from './support/backends';
import { cuttable } from './support/cuttable';
import { bytes, ConfigChange, ConfigWatcher, CoordinationCore, CoordinationError, ElectionService, HeartbeatService, LockService, ServiceInstance, ServiceRegistry, TaskRegistry, TaskStatus } from './support/recipes-api';
import { keepSpareWorkers, startWorker, Worker } from './support/workers';

const TTL = Number(process.env.RECIPES_TTL_SECONDS ?? 5);
/** the stress test waits for no expiry: a longer TTL keeps a loaded machine from costing a worker its session. */
const STRESS_TTL = 15;
/** what the machine may add on top of the TTL before a handover counts as late (expiry checks, watch delivery, load). */
const SLACK_MS = Number(process.env.RECIPES_SLACK_MS ?? 2500);

let nsCounter = 0;
const freshNamespace = () => `t${process.pid}-${Date.now().toString(36)}-${nsCounter++}/`;

async function until(what: string | (() => string), cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface ConformanceSizes {
  counterWorkers: number;
  counterIterations: number;
}

export function sizesFromEnv(defaults: ConformanceSizes): ConformanceSizes {
  return {
    counterWorkers: Number(process.env.RECIPES_STRESS_WORKERS ?? defaults.counterWorkers),
    counterIterations: Number(process.env.RECIPES_STRESS_ITERATIONS ?? defaults.counterIterations),
  };
}

export function describeConformance(name: BackendName, sizes: ConformanceSizes = sizesFromEnv({ counterWorkers: 4, counterIterations: 6 })): void {
  describe(`recipes conformance: ${name}`, () => {
    let backend: TestBackend;
    const cores: CoordinationCore[] = [];
    const workers: Worker[] = [];
    const subs: Subscription[] = [];

    /** A core of its own (own client connection, own session) in this process. */
    async function core(namespace: string, client?: KvClient): Promise<CoordinationCore> {
      const c = new CoordinationCore({ store: { client: client ?? (await backend.connect()) }, namespace, session: { ttlSeconds: TTL } });
      await c.start();
      cores.push(c);
      return c;
    }

    async function worker(namespace: string, id: string, spec: Parameters<typeof startWorker>[1]['spec'], ttlSeconds = TTL): Promise<Worker> {
      const w = await startWorker(backend, { namespace, ttlSeconds, spec, id });
      workers.push(w);
      return w;
    }

    beforeAll(async () => {
      backend = await startBackend(name);
      if (backend.childStore) keepSpareWorkers(4);
    }, 120_000);

    afterEach(async () => {
      subs.splice(0).forEach((s) => s.unsubscribe());
      await Promise.all(workers.splice(0).map((w) => w.kill()));
      await Promise.all(cores.splice(0).map((c) => c.close()));
    }, 30_000);

    afterAll(async () => {
      keepSpareWorkers(0);
      await backend?.stop();
    }, 60_000);

    describe('lock', () => {
      it('acquire, tryAcquire, timeout, abort, idempotent release, growing fencing tokens', async () => {
        const ns = freshNamespace();
        const a = new LockService(await core(ns));
        const b = new LockService(await core(ns));
        const first = await a.acquire('jobs/42');
        expect(first.held).toBe(true);
        expect(await b.tryAcquire('jobs/42')).toBeUndefined();
        // a name is one segment: "jobs/42/x" is another lock
        const other = await b.tryAcquire('jobs/42/x');
        expect(other).toBeDefined();
        await other!.release();

        const t0 = Date.now();
        await expect(b.acquire('jobs/42', { timeoutMs: 300 })).rejects.toMatchObject({ reason: 'timeout' });
        expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
        const ac = new AbortController();
        const aborted = b.acquire('jobs/42', { signal: ac.signal });
        setTimeout(() => ac.abort(), 100);
        await expect(aborted).rejects.toMatchObject({ reason: 'aborted' });

        const waiting = b.acquire('jobs/42');
        await first.release();
        await first.release(); // idempotent
        expect(first.held).toBe(false);
        expect(first.signal.aborted).toBe(true);
        const second = await waiting;
        expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
        // the old handle cannot write any more; the new one can
        await expect(first.ifOwner([{ put: { key: bytes(`${ns}guarded`), value: Buffer.from('old') } }])).rejects.toBeInstanceOf(CoordinationError);
        const ok = await second.ifOwner([{ put: { key: bytes(`${ns}guarded`), value: Buffer.from('new') } }]);
        expect(ok.succeeded).toBe(true);
        await second.release();
        // nothing left behind: the queue is empty (the timed-out and aborted waiters removed their keys)
        const left = await a.tryAcquire('jobs/42');
        expect(left).toBeDefined();
        await left!.release();
      });

      it('is fair: waiters are served in arrival order; withLock releases on throw', async () => {
        const ns = freshNamespace();
        const services = await Promise.all([0, 1, 2, 3].map(async () => new LockService(await core(ns))));
        const holder = await services[0].acquire('fair');
        const order: number[] = [];
        const waits: Promise<void>[] = [];
        for (const i of [1, 2, 3]) {
          waits.push(services[i].withLock('fair', () => void order.push(i)));
          await new Promise((r) => setTimeout(r, 150)); // arrive one after another
        }
        await holder.release();
        await Promise.all(waits);
        expect(order).toEqual([1, 2, 3]);
        await expect(services[1].withLock('fair', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
        const again = await services[2].tryAcquire('fair');
        expect(again).toBeDefined();
        await again!.release();
      });

      it('CAS lock: one holder, released on release, tokens grow', async () => {
        const ns = freshNamespace();
        const a = new LockService(await core(ns));
        const b = new LockService(await core(ns));
        const h = await a.acquire('cas', { kind: 'cas' });
        expect(await b.tryAcquire('cas', { kind: 'cas' })).toBeUndefined();
        const next = b.acquire('cas', { kind: 'cas', timeoutMs: 10_000 });
        await h.release();
        const h2 = await next;
        expect(h2.fencingToken).toBeGreaterThan(h.fencingToken);
        await h2.release();
      });

      it(`mutual exclusion under stress: ${sizes.counterWorkers} processes x ${sizes.counterIterations} increments`, async () => {
        const ns = freshNamespace();
        const started = Date.now();
        const ws = await Promise.all(
          Array.from({ length: sizes.counterWorkers }, (_, i) => worker(ns, `counter-${i}`, { role: 'counter', iterations: sizes.counterIterations, maxDelayMs: 5 }, STRESS_TTL)),
        );
        await Promise.all(ws.map((w) => w.waitFor((e) => e.ev === 'ready', 120_000)));
        const ready = Date.now();
        await Promise.all(ws.map((w) => w.waitFor((e) => e.ev === 'done', 600_000)));
        console.log(`[${name}] ${sizes.counterWorkers} x ${sizes.counterIterations} increments: workers up in ${ready - started} ms, increments took ${Date.now() - ready} ms`);
        const total = sizes.counterWorkers * sizes.counterIterations;
        const c = await core(ns);
        const r = await c.client.range({ key: bytes(`${ns}counter`) });
        expect(Number(r.kvs[0].value.toString())).toBe(total);
        const incs = ws.flatMap((w) => w.events.flatMap((e) => (e.ev === 'inc' ? [e] : [])));
        expect(incs.map((e) => e.value).sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
        // in counter order, every increment was made under a strictly larger fencing token
        const byValue = [...incs].sort((x, y) => x.value - y.value);
        for (let i = 1; i < byValue.length; i++) expect(byValue[i].token).toBeGreaterThan(byValue[i - 1].token);
      }, 900_000);

      it('a holder killed with kill -9 hands the lock on within the session TTL', async () => {
        const ns = freshNamespace();
        const holder = await worker(ns, 'holder', { role: 'hold', lock: 'handover' });
        const held = await holder.waitFor((e) => e.ev === 'held', 60_000);
        const locks = new LockService(await core(ns));
        const waiting = locks.acquire('handover', { timeoutMs: 60_000 });
        await new Promise((r) => setTimeout(r, 200));
        const killedAt = Date.now();
        await holder.kill();
        const h = await waiting;
        const handover = Date.now() - killedAt;
        expect(h.fencingToken).toBeGreaterThan((held as { token: number }).token);
        expect(handover).toBeLessThanOrEqual(TTL * 1000 + SLACK_MS);
        console.log(`[${name}] lock handover after kill -9: ${handover} ms (TTL ${TTL} s)`);
        await h.release();
      }, 120_000);
    });

    describe('election', () => {
      it('campaign, proclaim, resign, observe', async () => {
        const ns = freshNamespace();
        const a = new ElectionService(await core(ns));
        const b = new ElectionService(await core(ns));
        const seen: Array<unknown> = [];
        subs.push(a.observe('sched').subscribe((l) => seen.push(l?.value)));
        const la = await a.campaign('sched', 'a');
        expect(a.isLeader('sched')).toBe(true);
        await la.proclaim({ v: 2 });
        const bWins = b.campaign('sched', 'b');
        await until('proclaimed value observed', () => seen.some((v) => JSON.stringify(v) === '{"v":2}'));
        await la.resign();
        expect(la.signal.aborted).toBe(true);
        const lb = await bWins;
        expect(lb.fencingToken).toBeGreaterThan(la.fencingToken);
        await expect(la.proclaim('stale')).rejects.toBeInstanceOf(CoordinationError);
        await until('b observed', () => seen.at(-1) === 'b');
        expect(seen.filter((v) => v === 'b')).toHaveLength(1);
        expect((await b.leader('sched'))?.value).toBe('b');
        await lb.resign();
        await until('no leader observed', () => seen.at(-1) === undefined && seen.length > 3);
      });

      it('kill -9 the leader: exactly one new leader within the TTL, observers see each change once', async () => {
        const ns = freshNamespace();
        const ws = await Promise.all([0, 1, 2].map((i) => worker(ns, `cand-${i}`, { role: 'elect', election: 'leader' })));
        const electedIn = () => ws.filter((w) => w.events.some((e) => e.ev === 'elected'));
        await until('a first leader', () => electedIn().length === 1, 60_000);
        // every candidate queued (each observes its own key's election and the leader)
        await Promise.all(ws.map((w) => w.waitFor((e) => e.ev === 'observed' && e.token !== null, 60_000)));
        await new Promise((r) => setTimeout(r, 500));
        const leader = electedIn()[0];
        const firstToken = (leader.events.find((e) => e.ev === 'elected') as { token: number }).token;
        const killedAt = Date.now();
        await leader.kill();
        const rest = ws.filter((w) => w !== leader);
        await until('a new leader', () => rest.some((w) => w.events.some((e) => e.ev === 'elected')), TTL * 1000 + SLACK_MS + 5000);
        const took = Date.now() - killedAt;
        console.log(`[${name}] new leader after kill -9: ${took} ms (TTL ${TTL} s)`);
        expect(took).toBeLessThanOrEqual(TTL * 1000 + SLACK_MS);
        await new Promise((r) => setTimeout(r, 1000)); // time for a wrong second leader to show up
        const elected = rest.flatMap((w) => w.events.flatMap((e) => (e.ev === 'elected' ? [e.token] : [])));
        expect(elected).toHaveLength(1);
        expect(elected[0]).toBeGreaterThan(firstToken);
        for (const w of rest) {
          await w.waitFor((e) => e.ev === 'observed' && e.token === elected[0], 10_000);
          const observed = w.events.flatMap((e) => (e.ev === 'observed' ? [e.token] : []));
          // each change once, in order: the tokens only grow and none repeats
          for (let i = 1; i < observed.length; i++) expect(observed[i]).not.toBe(observed[i - 1]);
          const nonNull = observed.filter((t): t is number => t !== null);
          expect([...nonNull].sort((x, y) => x - y)).toEqual(nonNull);
          expect(new Set(nonNull).size).toBe(nonNull.length);
        }
      }, 180_000);
    });

    it('a cut-off client hears of its lost lock and leadership before anyone else is granted them', async () => {
      const ns = freshNamespace();
      const cut = cuttable(await backend.connect());
      const victim = await core(ns, cut.client);
      const other = await core(ns);
      const lock = await new LockService(victim).acquire('partition');
      const term = await new ElectionService(victim).campaign('partition', 'victim');
      const lostAt: Record<string, number> = {};
      lock.signal.addEventListener('abort', () => (lostAt.lock = Date.now()));
      term.signal.addEventListener('abort', () => (lostAt.leader = Date.now()));
      const grantedAt: Record<string, number> = {};
      const otherLock = new LockService(other).acquire('partition', { timeoutMs: 60_000 }).then((h) => ((grantedAt.lock = Date.now()), h));
      const otherTerm = new ElectionService(other).campaign('partition', 'other', { timeoutMs: 60_000 }).then((t) => ((grantedAt.leader = Date.now()), t));
      await new Promise((r) => setTimeout(r, 300));
      cut.cut();
      const cutAt = Date.now();
      const [h, t] = await Promise.all([otherLock, otherTerm]);
      expect(lostAt.lock).toBeDefined();
      expect(lostAt.leader).toBeDefined();
      expect(lostAt.lock).toBeLessThan(grantedAt.lock);
      expect(lostAt.leader).toBeLessThan(grantedAt.leader);
      console.log(`[${name}] cut off: lost after ${lostAt.lock - cutAt} ms, others granted after ${grantedAt.lock - cutAt} ms`);
      await h.release();
      await t.resign();
    }, 60_000);

    describe('config', () => {
      it('1,000 rapid updates arrive in order and the last equals the store; invalid values keep the last good one', async () => {
        const ns = freshNamespace();
        const reader = new ConfigWatcher(await core(ns));
        const writerCore = await core(ns);
        const writer = new ConfigWatcher(writerCore);
        const schema = z.object({ n: z.number().int() });
        const got: Array<ConfigChange<{ n: number }>> = [];
        subs.push(reader.changes('rapid', schema).subscribe((cs) => got.push(...cs)));
        const live = reader.live('rapid', schema);
        await live.ready;
        // rapid: ten writes in flight at a time; the store orders them, the watcher must follow that order
        const writeRevision = new Map<number, number>();
        for (let i = 1; i <= 1000; i += 10) {
          await Promise.all(Array.from({ length: 10 }, (_, j) => writer.set('rapid', { n: i + j }).then((rev) => writeRevision.set(i + j, rev))));
        }
        const byRevision = [...writeRevision].sort((a, b) => a[1] - b[1]).map(([n]) => n);
        const lastN = byRevision[999];
        await until('the last update', () => got.length === 1000, 60_000);
        expect(live.value?.n).toBe(lastN);
        for (let i = 1; i < got.length; i++) expect(got[i].revision).toBeGreaterThan(got[i - 1].revision);
        // every update once, in the order the store applied them
        expect(got.map((c) => c.value?.n)).toEqual(byRevision);
        const stored = await writerCore.client.range({ key: bytes(`${ns}config/rapid`) });
        expect(JSON.parse(stored.kvs[0].value.toString())).toEqual(live.value);
        await writer.set('rapid', 'not an object');
        await writer.set('rapid', { n: 'x' });
        await writer.set('rapid', { n: 1001 });
        await until('1001', () => live.value?.n === 1001);
        expect(got.map((c) => c.value?.n).slice(-2)).toEqual([lastN, 1001]);
      }, 240_000);

      it('a watcher that misses compacted updates re-reads and misses nothing current', async () => {
        const ns = freshNamespace();
        const cut = cuttable(await backend.connect());
        const reader = new ConfigWatcher(await core(ns, cut.client));
        const writerCore = await core(ns);
        const writer = new ConfigWatcher(writerCore);
        const all = new Map<string, number>();
        subs.push(
          reader.watch('app/', z.number()).subscribe((m) => {
            all.clear();
            for (const [k, v] of m) all.set(k, v);
          }),
        );
        await writer.set('app/a', 1);
        await writer.set('app/b', 1);
        await until('initial', () => all.get('app/b') === 1);
        cut.cut();
        for (let i = 2; i <= 50; i++) await writer.set(i % 2 ? 'app/a' : 'app/b', i);
        await writer.set('app/c', 7);
        await writerCore.client.deleteRange({ key: bytes(`${ns}config/app/b`) });
        const last = await writer.set('app/a', 99);
        await writerCore.client.compact(last);
        cut.reconnect();
        await until('resync after compaction', () => all.get('app/a') === 99 && all.get('app/c') === 7 && !all.has('app/b'), 30_000);
      }, 120_000);
    });

    it('discovery: 10 instances, 3 killed with kill -9, consumers stop picking them within the TTL', async () => {
      const ns = freshNamespace();
      // one instance per process for the ones that die; the 7 survivors share one process to keep the suite fast
      const victims = await Promise.all([0, 1, 2].map((i) => worker(ns, `inst-${i}`, { role: 'register', service: 'api', ids: [`i${i}`] })));
      await worker(ns, 'survivors', { role: 'register', service: 'api', ids: ['i3', 'i4', 'i5', 'i6', 'i7', 'i8', 'i9'] });
      const registry = new ServiceRegistry(await core(ns));
      let current: ServiceInstance[] = [];
      subs.push(registry.instances$('api').subscribe((l) => (current = l)));
      await until('10 instances', () => current.length === 10, 60_000);
      const picked = new Set<string>();
      for (let i = 0; i < 20; i++) picked.add((await registry.pick('api', 'round-robin'))!.id);
      expect(picked.size).toBe(10);
      const killedAt = Date.now();
      await Promise.all(victims.map((v) => v.kill()));
      const dead = new Set(['i0', 'i1', 'i2']);
      await until(() => `killed instances gone; have ${current.map((i) => i.id).join(',')}`, () => current.length === 7, TTL * 1000 + SLACK_MS + 5000);
      const took = Date.now() - killedAt;
      console.log(`[${name}] killed instances gone after ${took} ms (TTL ${TTL} s)`);
      expect(took).toBeLessThanOrEqual(TTL * 1000 + SLACK_MS);
      for (let i = 0; i < 30; i++) {
        for (const s of ['round-robin', 'random', 'sticky'] as const) expect(dead.has((await registry.pick('api', s))!.id)).toBe(false);
      }
      // noteError skips an instance for a while
      registry.noteError('api', 'i3', 60_000);
      for (let i = 0; i < 14; i++) expect((await registry.pick('api'))!.id).not.toBe('i3');
      const sticky = await registry.pick('api', 'sticky');
      for (let i = 0; i < 5; i++) expect((await registry.pick('api', 'sticky'))!.id).toBe(sticky!.id);
    }, 180_000);

    it("heartbeats and tasks: a dead worker's tasks disappear with its lease; durable reports stay", async () => {
      const ns = freshNamespace();
      const cut = cuttable(await backend.connect());
      const workerCore = await core(ns, cut.client);
      const managerCore = await core(ns);
      const tasks = new TaskRegistry(workerCore);
      const beats = new HeartbeatService(workerCore);
      let seen: TaskStatus[] = [];
      subs.push(new TaskRegistry(managerCore).tasks$().subscribe((t) => (seen = t)));
      const alive = new HeartbeatService(managerCore).alive$();
      await beats.beat('w1', { load: 1 });
      await tasks.report('t1', { percent: 10, state: 'running', message: 'starting' });
      await tasks.report('t1', { percent: 50, state: 'running' });
      await tasks.report('t2', { percent: 100, state: 'succeeded' }, { durable: true });
      await until('both tasks seen', () => seen.length === 2 && seen.find((t) => t.taskId === 't1')?.percent === 50);
      expect((await firstValueFrom(alive)).map((h) => h.id)).toEqual(['w1']);
      await expect(tasks.report('t3', { percent: 101, state: 'running' })).rejects.toThrow();
      cut.kill(); // the worker dies without a word
      await until('the dead worker’s task is gone', () => seen.length === 1, TTL * 1000 + SLACK_MS + 5000);
      expect(seen[0].taskId).toBe('t2');
      expect(await firstValueFrom(alive.pipe(rxFilter((l) => l.length === 0)))).toEqual([]);
    }, 60_000);
  });
}
