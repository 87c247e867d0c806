/**
 * Jest harness for side-by-side compatibility tests: every command/scenario runs
 * against a fresh real etcd 3.4 AND a fresh nestcd (in parallel), the normalized
 * outputs are compared (nestcd must equal etcd), and etcd's raw result is returned
 * so the test can also assert literal expectations about etcd itself.
 *
 *   const cmp = useCompatServers();          // call at describe level: beforeAll starts, afterAll stops
 *   it('put', async () => {
 *     const r = await cmp.run(['put', 'k', 'v']);      // compared on all targets
 *     expect(r.stdout).toBe('OK\n');                    // literal, on etcd's output
 *   });
 *   it('watch', async () => {
 *     const obs = await cmp.scenario(async (t) => { ...t.ctl.spawn([...])...; return {...}; });
 *   });
 *
 * COMPAT_TARGETS=etcd (or nestcd, or etcd,nestcd — the default) selects the targets.
 * The first target in the list is the reference ('etcd' whenever present).
 */
import { Etcdctl, EtcdctlOptions, EtcdctlResult } from './etcdctl';
import { normalizeDeep, NormalizeOptions } from './normalize';
import { ServerHandle, ServerKind, ServerOptions, startServer } from './processes';

export interface Target {
  kind: ServerKind;
  server: ServerHandle;
  ctl: Etcdctl;
}

export function compatTargetKinds(): ServerKind[] {
  const raw = process.env.COMPAT_TARGETS ?? 'etcd,nestcd';
  const kinds = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean) as ServerKind[];
  for (const k of kinds) {
    if (k !== 'etcd' && k !== 'nestcd') throw new Error(`COMPAT_TARGETS: unknown target ${k}`);
  }
  if (kinds.length === 0) throw new Error('COMPAT_TARGETS is empty');
  // etcd first: it is the reference.
  return kinds.sort((a, b) => (a === 'etcd' ? -1 : b === 'etcd' ? 1 : 0));
}

export interface CompatServers {
  /** All started targets, reference first. Valid inside tests (after beforeAll). */
  readonly targets: Target[];
  /** The reference target (etcd unless COMPAT_TARGETS excludes it). */
  readonly ref: Target;
  /** Look up a target by kind. */
  target(kind: ServerKind): Target;
  /**
   * Run one etcdctl command on every target in parallel, expect the normalized
   * results (code, signal, stdout, stderr) to be equal, return the reference's raw result.
   */
  run(args: string[], opts?: EtcdctlOptions & { normalize?: NormalizeOptions }): Promise<EtcdctlResult>;
  /**
   * Run the same scenario on every target in parallel, expect the normalized
   * return values (every string normalized) to be equal, return the reference's raw value.
   */
  scenario<T>(fn: (t: Target) => Promise<T>, opts?: { normalize?: NormalizeOptions; label?: string }): Promise<T>;
  /** Like scenario() but returns every target's raw value without comparing. */
  each<T>(fn: (t: Target) => Promise<T>): Promise<T[]>;
}

/**
 * Register beforeAll/afterAll hooks that start one fresh server per target kind
 * (in parallel) and always stop them, even when startup or tests fail.
 */
export function useCompatServers(options: { serverOptions?: ServerOptions; startTimeoutMs?: number } = {}): CompatServers {
  const kinds = compatTargetKinds();
  const targets: Target[] = [];
  const started: ServerHandle[] = [];

  beforeAll(async () => {
    const results = await Promise.allSettled(
      kinds.map(async (kind) => {
        const server = await startServer(kind, options.serverOptions);
        started.push(server);
        return { kind, server, ctl: new Etcdctl(server.endpoint) } as Target;
      }),
    );
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failures.length) {
      throw new Error(`could not start compat servers:\n${failures.map((f) => String(f.reason?.stack ?? f.reason)).join('\n')}`);
    }
    for (const r of results) if (r.status === 'fulfilled') targets.push(r.value);
  }, options.startTimeoutMs ?? 60000);

  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
  }, 30000);

  const api: CompatServers = {
    get targets() {
      return targets;
    },
    get ref() {
      if (!targets.length) throw new Error('compat servers are not running (startup failed?)');
      return targets[0];
    },
    target(kind) {
      const t = targets.find((x) => x.kind === kind);
      if (!t) throw new Error(`target ${kind} is not running`);
      return t;
    },
    async run(args, opts = {}) {
      const { normalize: nopts, ...ctlOpts } = opts;
      return api.scenario((t) => t.ctl.run(args, ctlOpts), { normalize: nopts, label: `etcdctl ${args.join(' ')}` });
    },
    async scenario(fn, opts = {}) {
      void api.ref; // throws if the servers did not start
      const values = await Promise.all(targets.map((t) => fn(t)));
      const expected = normalizeDeep(values[0], opts.normalize);
      targets.forEach((t, i) => {
        if (i === 0) return;
        // Wrapped so a failure message names the command and the two targets.
        expect({ target: t.kind, scenario: opts.label, result: normalizeDeep(values[i], opts.normalize) }).toEqual({
          target: t.kind,
          scenario: opts.label,
          result: expected,
        });
      });
      return values[0];
    },
    async each(fn) {
      return Promise.all(targets.map((t) => fn(t)));
    },
  };
  return api;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
