/** What the conformance suite's workers do, in a child process or in-process. */
import { bytes, CoordinationCore, ElectionService, LockService, ServiceRegistry } from './recipes-api';
import { retryTransient, sleep } from '../../src/util';

export type WorkerEvent =
  | { ev: 'ready' }
  | { ev: 'inc'; value: number; token: number }
  | { ev: 'done' }
  | { ev: 'held'; token: number }
  | { ev: 'elected'; token: number }
  | { ev: 'lost'; token: number }
  | { ev: 'observed'; token: number | null }
  | { ev: 'registered'; ids: string[] }
  | { ev: 'error'; message: string };

export type WorkerRole =
  | { role: 'counter'; iterations: number; maxDelayMs: number }
  | { role: 'hold'; lock: string }
  | { role: 'elect'; election: string }
  | { role: 'register'; service: string; ids: string[] };

export async function runRole(core: CoordinationCore, spec: WorkerRole, emit: (e: WorkerEvent) => void): Promise<void> {
  const locks = new LockService(core);
  const elections = new ElectionService(core);
  switch (spec.role) {
    case 'counter': {
      const key = bytes(core.keys.key('counter'));
      for (let i = 0; i < spec.iterations; i++) {
        await locks.withLock('counter', async (lock) => {
          // a plain read-modify-write: only the lock keeps it exact
          const r = await retryTransient(() => core.client.range({ key }));
          const v = r.kvs.length ? Number(r.kvs[0].value.toString()) : 0;
          const seen = r.kvs[0]?.modRevision ?? 0;
          await sleep(Math.random() * spec.maxDelayMs);
          // a write that timed out may have been applied: retry it only if the counter is still as we read it
          await retryTransient(async () => {
            const w = await core.client.txn({ compare: [{ key, target: 'mod', result: 'equal', value: seen }], success: [{ put: { key, value: Buffer.from(String(v + 1)) } }], failure: [{ range: { key } }] });
            if (!w.succeeded) {
              const now = w.responses[0] && 'range' in w.responses[0] ? w.responses[0].range.kvs[0] : undefined;
              if (now?.value.toString() !== String(v + 1)) throw new Error(`counter changed under the lock: read ${v}, now ${now?.value.toString()}`);
            }
          });
          emit({ ev: 'inc', value: v + 1, token: lock.fencingToken });
        });
      }
      emit({ ev: 'done' });
      return;
    }
    case 'hold': {
      const lock = await locks.acquire(spec.lock);
      emit({ ev: 'held', token: lock.fencingToken });
      await new Promise(() => undefined);
      return;
    }
    case 'elect': {
      elections.observe(spec.election).subscribe((l) => emit({ ev: 'observed', token: l?.fencingToken ?? null }));
      for (;;) {
        const term = await elections.campaign(spec.election);
        emit({ ev: 'elected', token: term.fencingToken });
        await new Promise<void>((r) => term.signal.addEventListener('abort', () => r(), { once: true }));
        emit({ ev: 'lost', token: term.fencingToken });
        await core.liveSession();
      }
    }
    case 'register': {
      const registry = new ServiceRegistry(core);
      for (const id of spec.ids) await registry.register({ service: spec.service, id, address: `127.0.0.1:${10000 + Number(id.replace(/\D/g, '') || 0)}` });
      emit({ ev: 'registered', ids: spec.ids });
      await new Promise(() => undefined);
    }
  }
}
