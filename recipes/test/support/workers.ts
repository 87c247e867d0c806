/** Workers for the conformance suite: real child processes (killed with SIGKILL) or, for in-process stores, cores in this process. */
import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../test/support/processes';
import { TestBackend } from './backends';
import { cuttable } from './cuttable';
import { CoordinationCore } from './recipes-api';
import { runRole, WorkerEvent, WorkerRole } from './roles';

export interface Worker {
  readonly id: string;
  readonly events: WorkerEvent[];
  /** resolves with the first event (already seen or to come) that matches. */
  waitFor<E extends WorkerEvent>(pred: (e: WorkerEvent) => e is E, timeoutMs?: number): Promise<E>;
  waitFor(pred: (e: WorkerEvent) => boolean, timeoutMs?: number): Promise<WorkerEvent>;
  /** SIGKILL (or, in-process: stop dead without revoking anything). */
  kill(): Promise<void>;
  /** resolves when the worker finished (exit / role returned). */
  readonly finished: Promise<void>;
}

export interface WorkerOptions {
  namespace: string;
  ttlSeconds: number;
  spec: WorkerRole;
  id: string;
}

const live = new Set<ChildProcess>();
process.once('exit', () => live.forEach((c) => c.kill('SIGKILL')));

class EventLog {
  readonly events: WorkerEvent[] = [];
  private readonly listeners = new Set<() => void>();
  /** what the worker printed besides events (stderr), for failure messages. */
  detail: () => string = () => '';
  constructor(private readonly id: string) {}
  push(e: WorkerEvent): void {
    this.events.push(e);
    for (const l of [...this.listeners]) l();
  }
  waitFor(pred: (e: WorkerEvent) => boolean, timeoutMs = 30_000): Promise<WorkerEvent> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.listeners.delete(check);
        clearTimeout(timer);
      };
      const check = () => {
        const hit = this.events.find(pred);
        if (hit) {
          done();
          resolve(hit);
          return;
        }
        const err = this.events.find((e) => e.ev === 'error');
        if (err) {
          done();
          reject(new Error(`worker ${this.id}: ${(err as { message: string }).message}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`worker ${this.id}: timed out; events: ${JSON.stringify(this.events.slice(-10))}; stderr: ${this.detail()}`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }
}

/**
 * Worker processes started ahead of need: each loads the code and waits for its job on stdin, so that a test does
 * not wait for node to start (the suite's TTL waits leave the CPU idle for that).
 */
const spares: ChildProcess[] = [];
let spareTarget = 0;

function spawnWorker(): ChildProcess {
  const child = spawn(process.execPath, ['-r', join(__dirname, 'register.js'), join(__dirname, 'worker-main.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, WORKER_CONFIG: '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => {
    live.delete(child);
    const i = spares.indexOf(child);
    if (i >= 0) spares.splice(i, 1);
  });
  return child;
}

function refill(): void {
  while (spares.length < spareTarget) spares.push(spawnWorker());
}

/** Keeps `n` worker processes started ahead (0: none; kills the spares). */
export function keepSpareWorkers(n: number): void {
  spareTarget = n;
  if (n === 0) for (const c of spares.splice(0)) c.kill('SIGKILL');
  else refill();
}

export async function startWorker(backend: TestBackend, o: WorkerOptions): Promise<Worker> {
  const log = new EventLog(o.id);
  if (backend.childStore) {
    const child = spares.shift() ?? spawnWorker();
    child.stdin!.write(JSON.stringify({ store: backend.childStore, namespace: o.namespace, ttlSeconds: o.ttlSeconds, spec: o.spec }) + '\n');
    setImmediate(refill);
    let killedOnPurpose = false;
    let buf = '';
    let stderr = '';
    let output = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('{')) log.push(JSON.parse(line) as WorkerEvent);
        else {
          output = (output + line + '\n').slice(-4000);
          if (process.env.RECIPES_DEBUG) process.stderr.write(`[${o.id}] ${line}\n`);
        }
      }
    });
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
    log.detail = () => `${stderr}\n${output}`;
    // 'close', not 'exit': only then has all of the worker's stdout (its last events) been read.
    const finished = new Promise<void>((r) =>
      child.once('close', (code, signal) => {
        if (!killedOnPurpose && !log.events.some((e) => e.ev === 'done')) log.push({ ev: 'error', message: `exited early (${code ?? signal}): ${stderr}` });
        else if (code !== 0 && signal !== 'SIGKILL') log.push({ ev: 'error', message: `exited ${code ?? signal}: ${stderr}` });
        r();
      }),
    );
    return {
      id: o.id,
      events: log.events,
      waitFor: ((pred: (e: WorkerEvent) => boolean, t?: number) => log.waitFor(pred, t)) as Worker['waitFor'],
      finished,
      async kill() {
        killedOnPurpose = true;
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await finished;
      },
    };
  }
  const cut = cuttable(await backend.connect());
  const core = new CoordinationCore({ store: { client: cut.client }, namespace: o.namespace, session: { ttlSeconds: o.ttlSeconds } });
  await core.start();
  log.push({ ev: 'ready' });
  const finished = runRole(core, o.spec, (e) => log.push(e)).then(
    () => core.close(),
    (err: unknown) => {
      if (!killed) log.push({ ev: 'error', message: String(err) });
    },
  );
  let killed = false;
  return {
    id: o.id,
    events: log.events,
    waitFor: ((pred: (e: WorkerEvent) => boolean, t?: number) => log.waitFor(pred, t)) as Worker['waitFor'],
    finished,
    async kill() {
      killed = true;
      // dead as after kill -9: nothing is revoked or deleted, the lease must expire by itself
      cut.kill();
      // close() cannot reach the store any more (nothing is revoked); it only stops this core's loops
      await core.close();
    },
  };
}
