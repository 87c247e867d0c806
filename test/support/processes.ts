/**
 * Start/stop real etcd 3.4 and nestcd servers for side-by-side tests.
 *
 *   const srv = await startEtcd();            // fresh single-member cluster, free ports, temp data dir
 *   const srv2 = await startNestcd({ name: 'n1' });
 *   srv.endpoint                              // 'http://127.0.0.1:<clientPort>'
 *   await srv.stop();                          // SIGTERM, then SIGKILL after a grace period; removes the temp data dir
 *
 * Both binaries take the same etcd flags. Every started process is tracked and
 * SIGKILLed on process exit as a last-resort safety net (stopAllServers() does it
 * gracefully and can be called from afterAll).
 *
 * Environment overrides (for local harness validation / CI):
 *   ETCD_BIN      path of the reference etcd (default: `etcd` on PATH, /usr/bin/etcd)
 *   NESTCD_BIN    path of the nestcd launcher (default: <repo>/bin/nestcd)
 *   COMPAT_KEEP_DATA=1  keep temp data dirs for debugging
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, accessSync, constants as fsConstants, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { etcdctl } from './etcdctl';

export type ServerKind = 'etcd' | 'nestcd';

export interface ServerOptions {
  /** Member name (--name). Default: 'ref' for etcd, 'ref' for nestcd too, so member lists look alike. */
  name?: string;
  /** Data directory. Default: a fresh mkdtemp dir that is removed by stop(). */
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  /** Extra flags appended after the standard ones (e.g. ['--auto-compaction-retention', '1']). */
  extraArgs?: string[];
  /** Extra environment for the server process. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for `etcdctl endpoint health` to succeed. Default 20 s. */
  readyTimeoutMs?: number;
  /** Binary to run instead of the default for this kind. */
  binary?: string;
  /**
   * The etcdctl command whose success means ready. Default `endpoint health` (a linearizable read); a learner,
   * which serves no linearizable reads, is ready once `endpoint status` answers.
   */
  readyCommand?: string[];
}

export interface ServerHandle {
  kind: ServerKind;
  name: string;
  /** http://127.0.0.1:<clientPort> */
  endpoint: string;
  clientPort: number;
  peerPort: number;
  peerUrl: string;
  dataDir: string;
  pid: number | undefined;
  process: ChildProcess;
  /** Combined stdout+stderr of the server so far (capped). */
  logs(): string;
  /** True while the process has not exited. */
  isRunning(): boolean;
  /** SIGTERM, wait up to graceMs (default 5 s), then SIGKILL. Idempotent. Removes the temp data dir it created. */
  stop(graceMs?: number): Promise<void>;
}

/** The repository root, found upwards from here: the same from test/support and from its build in dist/. */
export const REPO_ROOT = (() => {
  let dir = resolve(__dirname, '..', '..');
  while (!existsSync(join(dir, 'nest-cli.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();
const LOG_CAP = 256 * 1024;
const live = new Set<ServerHandle>();
const ownedDataDirs = new WeakSet<ServerHandle>();
const handedOutPorts = new Set<number>();

/** A free TCP port on 127.0.0.1 (never hands out the same port twice in this process). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((res, rej) => {
      const srv = createServer();
      srv.unref();
      srv.on('error', rej);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => res(p));
      });
    });
    if (port && !handedOutPorts.has(port)) {
      handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error('freePort: could not find an unused port');
}

export function etcdBinary(): string {
  if (process.env.ETCD_BIN) return process.env.ETCD_BIN;
  return existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : 'etcd';
}

export function nestcdBinary(): string {
  return process.env.NESTCD_BIN ?? join(REPO_ROOT, 'bin', 'nestcd');
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** [command, leadingArgs] for a binary path; JS launchers without +x are run with the current node. */
function commandFor(binary: string): [string, string[]] {
  if (!binary.includes('/')) return [binary, []]; // resolved through PATH
  if (!existsSync(binary)) {
    throw new Error(`server binary not found: ${binary}`);
  }
  if (isExecutable(binary)) return [binary, []];
  let head = '';
  try {
    head = readFileSync(binary, { encoding: 'utf8', flag: 'r' }).slice(0, 200);
  } catch {
    /* ignore */
  }
  // `#!/usr/bin/env node` or `#!/usr/bin/env -S node FLAGS`: the current node, with the launcher's flags
  const nodeShebang = /^#!\/usr\/bin\/env (?:-S )?node(?: (.*))?$/.exec(head.split('\n')[0]);
  if (nodeShebang) return [process.execPath, [...(nodeShebang[1] ?? '').split(' ').filter(Boolean), binary]];
  if (binary.endsWith('.js') || !head.startsWith('#!')) return [process.execPath, [binary]];
  throw new Error(`server binary is not executable: ${binary}`);
}

/** The etcd flags for a single-member cluster. */
export function serverArgs(o: { name: string; dataDir: string; clientPort: number; peerPort: number }): string[] {
  const client = `http://127.0.0.1:${o.clientPort}`;
  const peer = `http://127.0.0.1:${o.peerPort}`;
  return [
    '--name', o.name,
    '--data-dir', o.dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `${o.name}=${peer}`,
  ];
}

export async function startServer(kind: ServerKind, opts: ServerOptions = {}): Promise<ServerHandle> {
  const name = opts.name ?? 'ref';
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const ownDataDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), `compat-${kind}-`));
  const binary = opts.binary ?? (kind === 'etcd' ? etcdBinary() : nestcdBinary());
  const [cmd, lead] = commandFor(binary);
  const args = [...lead, ...serverArgs({ name, dataDir, clientPort, peerPort }), ...(opts.extraArgs ?? [])];

  const child = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const append = (b: Buffer) => {
    log += b.toString('utf8');
    if (log.length > LOG_CAP) log = log.slice(log.length - LOG_CAP);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  let exited = false;
  let exitInfo = '';
  const exitPromise = new Promise<void>((res) => {
    child.once('exit', (code, signal) => {
      exited = true;
      exitInfo = `code=${code} signal=${signal}`;
      res();
    });
    child.once('error', (err) => {
      exited = true;
      exitInfo = `spawn error: ${err.message}`;
      res();
    });
  });

  let stopped: Promise<void> | undefined;
  const handle: ServerHandle = {
    kind,
    name,
    endpoint: `http://127.0.0.1:${clientPort}`,
    clientPort,
    peerPort,
    peerUrl: `http://127.0.0.1:${peerPort}`,
    dataDir,
    pid: child.pid,
    process: child,
    logs: () => log,
    isRunning: () => !exited,
    stop(graceMs = 5000) {
      stopped ??= (async () => {
        if (!exited) {
          child.kill('SIGTERM');
          const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
          if ((await Promise.race([exitPromise, timer])) === 'timeout' && !exited) {
            child.kill('SIGKILL');
            await exitPromise;
          }
        }
        live.delete(handle);
        if (ownDataDir && !process.env.COMPAT_KEEP_DATA) {
          rmSync(dataDir, { recursive: true, force: true });
        }
      })();
      return stopped;
    },
  };
  live.add(handle);
  if (ownDataDir) ownedDataDirs.add(handle);

  try {
    await waitUntilReady(handle, opts.readyTimeoutMs ?? 20000, () => (exited ? exitInfo : undefined), opts.readyCommand);
  } catch (err) {
    await handle.stop(1000);
    throw err;
  }
  return handle;
}

export const startEtcd = (opts: ServerOptions = {}) => startServer('etcd', opts);
export const startNestcd = (opts: ServerOptions = {}) => startServer('nestcd', opts);

/**
 * Poll `etcdctl endpoint health` until it succeeds. Fails fast (with the server's
 * log tail) if the process exits first.
 */
export async function waitUntilReady(
  server: Pick<ServerHandle, 'endpoint' | 'kind' | 'logs'>,
  timeoutMs = 20000,
  exitedInfo: () => string | undefined = () => undefined,
  readyCommand: string[] = ['endpoint', 'health'],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const ex = exitedInfo();
    if (ex) {
      throw new Error(`${server.kind} exited before becoming ready (${ex}). Log tail:\n${server.logs().slice(-4000)}`);
    }
    const r = await etcdctl(server.endpoint, [...readyCommand, '--command-timeout=1s', '--dial-timeout=500ms'], {
      timeoutMs: 3000,
    });
    if (r.code === 0) return;
    last = r.stdout + r.stderr;
    await new Promise((res) => setTimeout(res, 150));
  }
  throw new Error(
    `${server.kind} at ${server.endpoint} not healthy after ${timeoutMs} ms. Last etcdctl output:\n${last}\nLog tail:\n${server
      .logs()
      .slice(-4000)}`,
  );
}

/** Gracefully stop every server started by this process (safe to call from afterAll). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

process.once('exit', () => {
  for (const s of live) {
    try {
      s.process.kill('SIGKILL');
    } catch {
      /* already gone */
    }
    if (ownedDataDirs.has(s) && !process.env.COMPAT_KEEP_DATA) {
      try {
        rmSync(s.dataDir, { recursive: true, force: true });
      } catch {
        /* ignore */
      }
    }
  }
});
