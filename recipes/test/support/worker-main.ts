/** A conformance-suite worker process: WORKER_CONFIG = { store, namespace, ttlSeconds, spec }; JSON events on stdout. */
import { CoordinationCore, StoreOptions } from './recipes-api';
import { runRole, WorkerEvent, WorkerRole } from './roles';

interface WorkerConfig {
  store: StoreOptions;
  namespace: string;
  ttlSeconds: number;
  spec: WorkerRole;
}

/** The config from WORKER_CONFIG, or else the first line on stdin (a pre-started worker waits for its job there). */
async function config(): Promise<WorkerConfig> {
  if (process.env.WORKER_CONFIG) return JSON.parse(process.env.WORKER_CONFIG) as WorkerConfig;
  let buf = '';
  for await (const chunk of process.stdin) {
    buf += String(chunk);
    const i = buf.indexOf('\n');
    if (i >= 0) return JSON.parse(buf.slice(0, i)) as WorkerConfig;
  }
  throw new Error('no worker config on stdin');
}

async function main(): Promise<void> {
  const cfg = await config();
  const emit = (e: WorkerEvent) => process.stdout.write(JSON.stringify(e) + '\n');
  // the recipes' timers do not keep a process alive; this worker lives until its role ends or it is killed
  const keepAlive = setInterval(() => undefined, 60_000);
  const core = new CoordinationCore({ store: cfg.store, namespace: cfg.namespace, session: { ttlSeconds: cfg.ttlSeconds } });
  await core.start();
  emit({ ev: 'ready' });
  await runRole(core, cfg.spec, emit);
  await core.close();
  clearInterval(keepAlive);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stdout.write(JSON.stringify({ ev: 'error', message: String((err as Error).stack ?? err) }) + '\n');
  process.exit(1);
});
