/**
 * Run the real etcdctl (v3 API) against an endpoint, without a shell.
 *
 *   const r = await etcdctl(srv.endpoint, ['put', 'k', 'v']);   // { code, signal, stdout, stderr, ... }
 *   const r2 = await etcdctl(srv.endpoint, ['put', 'k'], { stdin: bigValue });
 *   const w = spawnEtcdctl(srv.endpoint, ['watch', 'k']);       // background process
 *   await w.waitFor(/PUT/);  const res = await w.stop();         // SIGTERM and collect
 *
 * ETCDCTL_* variables inherited from the environment are removed so the
 * endpoint flag is the only source of configuration (ETCDCTL_API=3 is set).
 * ETCDCTL_BIN overrides the binary (default /usr/bin/etcdctl or `etcdctl` on PATH).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface EtcdctlResult {
  /** Exit code, or null if killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True if our timeout killed it. */
  timedOut: boolean;
  /** The argv (without the binary and the --endpoints flag), for messages. */
  args: string[];
}

export interface EtcdctlOptions {
  /** Written to stdin, which is then closed. Default: empty stdin (closed immediately). */
  stdin?: string | Buffer;
  /** Kill (SIGKILL) after this many ms. Default 15 s. */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
}

export function etcdctlBinary(): string {
  if (process.env.ETCDCTL_BIN) return process.env.ETCDCTL_BIN;
  return existsSync('/usr/bin/etcdctl') ? '/usr/bin/etcdctl' : 'etcdctl';
}

function ctlEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ETCDCTL_')) env[k] = v;
  }
  env.ETCDCTL_API = '3';
  return { ...env, ...extra };
}

function endpointsArg(endpoints: string | string[]): string {
  return `--endpoints=${Array.isArray(endpoints) ? endpoints.join(',') : endpoints}`;
}

/** Background etcdctl process (watch, lock, elect, lease keep-alive ...). */
export interface EtcdctlProcess {
  process: ChildProcess;
  args: string[];
  /** Output collected so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the stdout when `pattern` matches it (or `predicate` returns true); rejects after timeoutMs. */
  waitFor(pattern: RegExp | ((stdout: string) => boolean), timeoutMs?: number): Promise<string>;
  /** Resolves when the process exits by itself. */
  exited(): Promise<EtcdctlResult>;
  /** Send `signal` (default SIGTERM) unless exited, SIGKILL after graceMs, and return the result. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<EtcdctlResult>;
  isRunning(): boolean;
}

const liveCtl = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of liveCtl) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* ignore */
    }
  }
});

export function spawnEtcdctl(endpoints: string | string[], args: string[], opts: EtcdctlOptions = {}): EtcdctlProcess {
  const child = spawn(etcdctlBinary(), [endpointsArg(endpoints), ...args], {
    env: ctlEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  liveCtl.add(child);
  let out = '';
  let err = '';
  let timedOut = false;
  let exited = false;
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString('utf8');
    listeners.forEach((l) => l());
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString('utf8');
  });
  child.stdin!.on('error', () => {
    /* EPIPE if etcdctl exits before reading stdin */
  });
  if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  else child.stdin!.end();

  const done = new Promise<EtcdctlResult>((resolveDone) => {
    let finished = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (finished) return;
      finished = true;
      exited = true;
      liveCtl.delete(child);
      clearTimeout(timer);
      listeners.forEach((l) => l());
      resolveDone({ code, signal, stdout: out, stderr: err, timedOut, args });
    };
    // 'close' fires after stdio streams are drained, so the output is complete.
    child.once('close', (code, signal) => finish(code, signal));
    child.once('error', (e) => {
      err += `spawn error: ${e.message}`;
      finish(127, null);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 15000);
    timer.unref();
  });

  return {
    process: child,
    args,
    stdout: () => out,
    stderr: () => err,
    isRunning: () => !exited,
    exited: () => done,
    waitFor(pattern, timeoutMs = 10000) {
      const test = typeof pattern === 'function' ? pattern : (s: string) => pattern.test(s);
      return new Promise<string>((res, rej) => {
        const check = () => {
          if (test(out)) {
            cleanup();
            res(out);
          } else if (exited) {
            cleanup();
            rej(new Error(`etcdctl ${args.join(' ')} exited before output matched ${pattern}.\nstdout:\n${out}\nstderr:\n${err}`));
          }
        };
        const t = setTimeout(() => {
          cleanup();
          rej(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from etcdctl ${args.join(' ')}.\nstdout:\n${out}\nstderr:\n${err}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(t);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (!exited) {
        child.kill(signal);
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        t.unref();
        const r = await done;
        clearTimeout(t);
        return r;
      }
      return done;
    },
  };
}

/** Run etcdctl to completion. Never rejects; inspect `code`. */
export function etcdctl(endpoints: string | string[], args: string[], opts: EtcdctlOptions = {}): Promise<EtcdctlResult> {
  return spawnEtcdctl(endpoints, args, opts).exited();
}

/** etcdctl bound to one server/endpoint list. */
export class Etcdctl {
  constructor(readonly endpoints: string | string[]) {}

  run(args: string[], opts?: EtcdctlOptions): Promise<EtcdctlResult> {
    return etcdctl(this.endpoints, args, opts);
  }

  spawn(args: string[], opts?: EtcdctlOptions): EtcdctlProcess {
    return spawnEtcdctl(this.endpoints, args, opts);
  }

  /** Run and throw (with the output) unless it exits 0; returns stdout. */
  async ok(args: string[], opts?: EtcdctlOptions): Promise<string> {
    const r = await this.run(args, opts);
    if (r.code !== 0) {
      throw new Error(`etcdctl ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    }
    return r.stdout;
  }

  /** Current store revision (from `get -w json` header). */
  async revision(): Promise<number> {
    const out = await this.ok(['get', 'nestcd-compat-revision-probe', '-w', 'json']);
    const m = /"revision":(\d+)/.exec(out);
    if (!m) throw new Error(`no revision in ${out}`);
    return Number(m[1]);
  }

  /** Grant a lease and return its hex ID as printed by etcdctl. */
  async grantLease(ttlSeconds: number): Promise<string> {
    const out = await this.ok(['lease', 'grant', String(ttlSeconds)]);
    const m = /^lease ([0-9a-f]+) granted/.exec(out);
    if (!m) throw new Error(`unexpected lease grant output: ${out}`);
    return m[1];
  }
}
