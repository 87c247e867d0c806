/**
 * Golden harness for nestcdctl: every scenario runs with the real etcdctl and with nestcdctl, each against its own
 * freshly started twin of the same server (so writes produce the same revisions), for both server kinds:
 *
 *   etcd   twin A <- etcdctl      etcd   twin B <- nestcdctl
 *   nestcd twin A <- etcdctl      nestcd twin B <- nestcdctl
 *
 * The transcripts (argv, exit code, stdout, stderr; IDs, ports, timings and the program name normalised) of
 * etcdctl and nestcdctl must be equal per server kind. GOLDEN_TARGETS=etcd (or nestcd) narrows the kinds.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { etcdctlBinary } from '../support/etcdctl';
import { normalize, type NormalizeOptions } from '../support/normalize';
import { REPO_ROOT, startServer, type ServerHandle, type ServerKind } from '../support/processes';

export type Tool = 'etcdctl' | 'nestcdctl';

export interface RunResult {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** replace the --endpoints flag (e.g. an unreachable one); '' leaves it out. */
  endpoints?: string;
  /** extra patterns masked in this run's output (e.g. remaining TTLs in -w fields). */
  mask?: RegExp[];
  /** stdout lines in any order (lists whose order follows random member IDs). */
  sortLines?: boolean;
  /** which streams end up in the transcript (default both). */
  compare?: Array<'stdout' | 'stderr'>;
  /** send this signal once `waitFor` matched stdout (for lock, elect, watch). */
  stopWhen?: { waitFor: RegExp; signal?: NodeJS.Signals };
}

export const NESTCDCTL = join(REPO_ROOT, 'bin', 'nestcdctl');

function cleanEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCDCTL_')) env[k] = v;
  return { ...env, ETCDCTL_API: '3', NO_COLOR: '1', ...extra };
}

/** Runs one tool to completion (or until stopWhen matched and the signal ended it). Never rejects. */
export function runTool(tool: Tool, endpoint: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, lead] = tool === 'etcdctl' ? [etcdctlBinary(), []] : [process.execPath, [NESTCDCTL]];
  const eps = opts.endpoints ?? endpoint;
  const child = spawn(cmd, [...lead, ...(eps ? [`--endpoints=${eps}`] : []), ...args], { env: cleanEnv(opts.env), stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  let stopped = false;
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
    if (opts.stopWhen && !stopped && opts.stopWhen.waitFor.test(stdout)) {
      stopped = true;
      child.kill(opts.stopWhen.signal ?? 'SIGTERM');
    }
  });
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdin.on('error', () => undefined);
  child.stdin.end(opts.stdin ?? '');
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ args, code, signal, stdout, stderr });
    });
  });
}

/** A scenario's view of one tool on one server. */
export interface Runner {
  tool: Tool;
  kind: ServerKind;
  server: ServerHandle;
  /** run the tool and record the normalised result in the transcript. */
  run(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** run the real etcdctl for setup (not recorded). */
  setup(args: string[], opts?: RunOptions): Promise<RunResult>;
}

export interface GoldenOptions {
  normalize?: NormalizeOptions;
}

/** Masks what legitimately differs between two runs beyond test/support's normalize(). */
export function normalizeCtl(text: string, opts?: NormalizeOptions): string {
  let s = text.replace(/nestcdctl/g, 'etcdctl');
  // member add/remove/update print IDs with %16x (space padded).
  s = s.replace(/^Member +[0-9a-f]+ (added to|removed from|updated in|promoted in) cluster +[0-9a-f]+$/gm, 'Member <ID> $1 cluster <CID>');
  s = s.replace(/Leadership transferred from [0-9a-f]+ to [0-9a-f]+/g, 'Leadership transferred from <ID> to <ID>');
  // lease IDs printed unpadded (lock keys, elections) and in keys
  s = s.replace(/\/[0-9a-f]{12,16}\b/g, '/<LEASE>');
  // hashes of the (identical) keyspace are compared on twins of one kind, but snapshot files hold member IDs
  s = s.replace(/"Took" : \S+/g, '"Took" : <DURATION>');
  s = s.replace(/^ETCD_INITIAL_CLUSTER="([^"]*)"$/gm, (_m, list: string) => `ETCD_INITIAL_CLUSTER="${list.split(',').sort().join(',')}"`);
  s = s.replace(/\b(member (?:update|promote|remove)|move-leader) [0-9a-f]{1,16}\b/g, '$1 <ID>');
  // pkg/flags' capnslog timestamp
  s = s.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ /gm, '<TS> ');
  return normalize(s, opts);
}

export interface Golden {
  kinds: ServerKind[];
  /**
   * Runs `fn` with etcdctl and with nestcdctl on twin servers of every kind, in parallel; expects equal
   * normalised transcripts per kind and returns the etcdctl transcript on etcd (or the first kind).
   */
  scenario(label: string, fn: (r: Runner) => Promise<void>, opts?: GoldenOptions): Promise<RunResult[]>;
  /** the server twin a tool talks to. */
  server(kind: ServerKind, tool: Tool): ServerHandle;
}

export function goldenKinds(): ServerKind[] {
  const raw = process.env.GOLDEN_TARGETS ?? 'etcd,nestcd';
  return raw.split(',').map((s) => s.trim()).filter(Boolean) as ServerKind[];
}

/** beforeAll starts the twins (four servers by default), afterAll stops them. */
export function useGolden(kinds: ServerKind[] = goldenKinds()): Golden {
  const servers = new Map<string, ServerHandle>();
  const started: ServerHandle[] = [];
  beforeAll(async () => {
    await Promise.all(
      kinds.flatMap((kind) =>
        (['etcdctl', 'nestcdctl'] as Tool[]).map(async (tool) => {
          const s = await startServer(kind, { readyTimeoutMs: 40000 });
          started.push(s);
          servers.set(`${kind}/${tool}`, s);
        }),
      ),
    );
  }, 90000);
  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
  }, 30000);

  const api: Golden = {
    kinds,
    server(kind, tool) {
      const s = servers.get(`${kind}/${tool}`);
      if (!s) throw new Error(`golden server ${kind}/${tool} is not running`);
      return s;
    },
    async scenario(label, fn, opts = {}) {
      const combos = kinds.flatMap((kind) => (['etcdctl', 'nestcdctl'] as Tool[]).map((tool) => ({ kind, tool })));
      const transcripts = await Promise.all(
        combos.map(async ({ kind, tool }) => {
          const server = api.server(kind, tool);
          const raw: RunResult[] = [];
          const recorded: unknown[] = [];
          const runner: Runner = {
            tool,
            kind,
            server,
            async run(args, o = {}) {
              const r = await runTool(tool, server.endpoint, args, o);
              raw.push(r);
              const compare = o.compare ?? ['stdout', 'stderr'];
              for (const re of o.mask ?? []) {
                r.stdout = r.stdout.replace(re, '<MASKED>');
                r.stderr = r.stderr.replace(re, '<MASKED>');
              }
              recorded.push({
                args: normalizeCtl(args.join(' '), opts.normalize),
                code: r.code,
                signal: r.signal,
                ...(compare.includes('stdout')
                  ? { stdout: o.sortLines ? normalizeCtl(r.stdout, opts.normalize).split('\n').sort() : normalizeCtl(r.stdout, opts.normalize) }
                  : {}),
                ...(compare.includes('stderr') ? { stderr: normalizeCtl(r.stderr, opts.normalize) } : {}),
              });
              return r;
            },
            setup: (args, o) => runTool('etcdctl', server.endpoint, args, o),
          };
          await fn(runner);
          return { kind, tool, raw, recorded };
        }),
      );
      for (const kind of kinds) {
        const ref = transcripts.find((t) => t.kind === kind && t.tool === 'etcdctl')!;
        const ours = transcripts.find((t) => t.kind === kind && t.tool === 'nestcdctl')!;
        expect({ scenario: label, server: kind, tool: 'nestcdctl', transcript: ours.recorded }).toEqual({
          scenario: label,
          server: kind,
          tool: 'nestcdctl',
          transcript: ref.recorded,
        });
      }
      return transcripts.find((t) => t.tool === 'etcdctl')!.raw;
    },
  };
  return api;
}
