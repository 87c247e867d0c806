// Beyond etcdctl: `check perf` (etcdctl's loads and pass rules, with a progress bar and a summary table),
// `tree [prefix]` and `completion bash|zsh`.
import { prefixEnd } from '@nestcd/client';
import { Command, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import type { Cli } from '../cli';
import { errorText, ExitCode, fail, out } from '../context';
import { goQuote, parseGoDuration, renderTable } from '../format';

/** etcdctl 3.4's check perf workloads. */
export const PERF_LOADS: Record<string, { limit: number; clients: number; durationS: number }> = {
  s: { limit: 150, clients: 50, durationS: 60 },
  m: { limit: 1000, clients: 200, durationS: 60 },
  l: { limit: 8000, clients: 500, durationS: 60 },
  xl: { limit: 15000, clients: 1000, durationS: 60 },
};

export interface PerfStats {
  requests: number;
  errors: number;
  rps: number;
  slowestS: number;
  fastestS: number;
  averageS: number;
  stddevS: number;
}

export function perfStats(latenciesS: number[], errors: number, elapsedS: number): PerfStats {
  const n = latenciesS.length;
  const avg = n ? latenciesS.reduce((a, b) => a + b, 0) / n : 0;
  const variance = n ? latenciesS.reduce((a, b) => a + (b - avg) ** 2, 0) / n : 0;
  return {
    requests: n,
    errors,
    rps: elapsedS > 0 ? n / elapsedS : 0,
    slowestS: n ? Math.max(...latenciesS) : 0,
    fastestS: n ? Math.min(...latenciesS) : 0,
    averageS: avg,
    stddevS: Math.sqrt(variance),
  };
}

/** etcdctl's verdict lines and whether the run passed. */
export function perfVerdict(s: PerfStats, limit: number): { lines: string[]; ok: boolean } {
  const lines: string[] = [];
  let ok = true;
  if (s.errors) {
    lines.push('FAIL: too many errors');
    ok = false;
  }
  if (s.rps / limit <= 0.9) {
    lines.push(`FAIL: Throughput too low: ${Math.floor(s.rps) + 1} writes/s`);
    ok = false;
  } else lines.push(`PASS: Throughput is ${Math.floor(s.rps) + 1} writes/s`);
  if (s.slowestS > 0.5) {
    lines.push(`FAIL: Slowest request took too long: ${s.slowestS.toFixed(6)}s`);
    ok = false;
  } else lines.push(`PASS: Slowest request took ${s.slowestS.toFixed(6)}s`);
  if (s.stddevS > 0.1) {
    lines.push(`FAIL: Stddev too high: ${s.stddevS.toFixed(6)}s`);
    ok = false;
  } else lines.push(`PASS: Stddev is ${s.stddevS.toFixed(6)}s`);
  lines.push(ok ? 'PASS' : 'FAIL');
  return { lines, ok };
}

function bar(done: number, total: number, label: string): string {
  const width = 40;
  const filled = Math.min(width, Math.round((done / total) * width));
  return `\r${label} [${'='.repeat(filled)}${filled < width ? '>' : ''}${' '.repeat(Math.max(0, width - filled - 1))}] ${Math.min(100, Math.round((done / total) * 100))}%`;
}

/** Keys as a tree: `a/b/c` under `a` and `b`, leaves with their values. */
export function renderTree(keys: { key: string; value: string }[], root: string): string {
  interface Node {
    children: Map<string, Node>;
    value?: string;
  }
  const top: Node = { children: new Map() };
  for (const { key, value } of keys) {
    const rest = key.slice(root.length);
    const parts = rest.split('/').filter((p, i, a) => p !== '' || i === a.length - 1);
    let n = top;
    for (const part of parts) {
      if (!n.children.has(part)) n.children.set(part, { children: new Map() });
      n = n.children.get(part)!;
    }
    n.value = value;
  }
  const lines: string[] = [root || '/'];
  const walk = (n: Node, indent: string) => {
    const entries = [...n.children.entries()];
    entries.forEach(([name, child], i) => {
      const last = i === entries.length - 1;
      const shown = child.value !== undefined ? `${name || '""'} = ${child.value.length > 60 ? `${child.value.slice(0, 57)}...` : child.value}` : name;
      lines.push(`${indent}${last ? '└── ' : '├── '}${shown}${child.children.size && child.value === undefined ? '/' : ''}`);
      walk(child, indent + (last ? '    ' : '│   '));
    });
  };
  walk(top, '');
  return `${lines.join('\n')}\n`;
}

interface CmdInfo {
  path: string[];
  options: string[];
  subcommands: string[];
}

function collect(cmd: Command, path: string[], acc: CmdInfo[]): CmdInfo[] {
  acc.push({
    path,
    options: cmd.options.filter((o) => !o.hidden).map((o) => o.long).filter((x): x is string => !!x),
    subcommands: cmd.commands.map((c) => c.name()),
  });
  cmd.commands.forEach((c) => collect(c, [...path, c.name()], acc));
  return acc;
}

export function bashCompletion(program: Command): string {
  const infos = collect(program, [], []);
  const globals = infos[0].options.join(' ');
  const cases = infos
    .map((i) => `    "${i.path.join(' ')}") words="${[...i.subcommands, ...i.options].join(' ')}" ;;`)
    .join('\n');
  return `# bash completion for nestcdctl; load with: source <(nestcdctl completion bash)
_nestcdctl() {
  local cur path words w
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) path="\${path:+$path }$w" ;; esac
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words ${globals}" -- "$cur") )
}
complete -F _nestcdctl nestcdctl
`;
}

export function zshCompletion(program: Command): string {
  return `#compdef nestcdctl
# zsh completion for nestcdctl; load with: source <(nestcdctl completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program)}`;
}

export function registerExtras(program: Command, cli: Cli): void {
  const check = program.command('check').summary('commands for checking properties of the etcd cluster');
  check
    .command('perf')
    .summary('Check the performance of the etcd cluster')
    .argument('[args...]')
    .option('--load <load>', 'The performance check\'s workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)', 's')
    .option('--prefix <prefix>', 'The prefix for writing the performance check\'s keys.', '/etcdctl-check-perf/')
    .option('--auto-compact', 'Compact storage with last revision after test is finished.')
    .option('--auto-defrag', 'Defragment storage after test is finished.')
    .addOption(new Option('--duration <duration>', 'nestcdctl: run for this long instead of the load\'s 60s').hideHelp())
    .action(async (_args: string[], o: { load: string; prefix: string; autoCompact?: boolean; autoDefrag?: boolean; duration?: string }) => {
      const cfg = PERF_LOADS[o.load];
      if (!cfg) fail(ExitCode.BadFeature, `unknown load option ${o.load}`);
      const durationS = o.duration ? parseGoDuration(o.duration) / 1000 : cfg.durationS;
      const c = cli.client;
      const pfx = Buffer.from(o.prefix);
      const existing = await c.range({ key: pfx, rangeEnd: prefixEnd(pfx), countOnly: true }).catch((err) => fail(ExitCode.Error, errorText(err)));
      if (existing.count > 0) fail(ExitCode.InvalidInput, `prefix ${goQuote(o.prefix)} has keys. Delete with etcdctl del --prefix ${o.prefix} first.`);

      const value = randomBytes(512);
      const latencies: number[] = [];
      let errors = 0;
      const tty = !!process.stderr.isTTY;
      const start = Date.now();
      const end = start + durationS * 1000;
      const interval = 1000 / cfg.limit;
      let inFlight = 0;
      let next = start;
      let lastDraw = 0;
      await new Promise<void>((resolve) => {
        const tick = () => {
          const now = Date.now();
          if (tty && now - lastDraw > 200) {
            lastDraw = now;
            process.stderr.write(bar(now - start, end - start, 'check perf'));
          }
          if (now >= end) {
            if (inFlight === 0) return resolve();
            return void setTimeout(tick, 10);
          }
          // issue every request due by now, bounded by the load's client count
          while (next <= now && inFlight < cfg.clients) {
            next += interval;
            inFlight++;
            const t0 = process.hrtime.bigint();
            const key = Buffer.concat([pfx, randomBytes(8)]);
            c.put({ key, value }).then(
              () => latencies.push(Number(process.hrtime.bigint() - t0) / 1e9),
              () => errors++,
            ).finally(() => inFlight--);
          }
          setTimeout(tick, Math.max(1, Math.min(10, next - Date.now())));
        };
        tick();
      });
      if (tty) process.stderr.write(`${bar(1, 1, 'check perf')}\n`);
      const elapsedS = (Date.now() - start) / 1000;
      const stats = perfStats(latencies, errors, elapsedS);
      const dres = await c.deleteRange({ key: pfx, rangeEnd: prefixEnd(pfx) }).catch(() => undefined);
      if (o.autoCompact && dres) await c.compact(dres.header.revision).catch(() => undefined);
      if (o.autoDefrag) for (const ep of cli.globals.endpoints) await cli.clientFor(ep).defragment().catch(() => undefined);
      const verdict = perfVerdict(stats, cfg.limit);
      out(
        renderTable(
          ['load', 'requests', 'errors', 'writes/s', 'target/s', 'slowest', 'fastest', 'average', 'stddev'],
          [[o.load, String(stats.requests), String(stats.errors), stats.rps.toFixed(1), String(cfg.limit), `${stats.slowestS.toFixed(4)}s`,
            `${stats.fastestS.toFixed(4)}s`, `${stats.averageS.toFixed(4)}s`, `${stats.stddevS.toFixed(4)}s`]],
        ),
      );
      out(`${verdict.lines.join('\n')}\n`);
      if (!verdict.ok) process.exitCode = ExitCode.Error;
    });

  program
    .command('tree')
    .summary('nestcdctl: shows the keyspace (or the keys under a prefix) as a tree split on "/"')
    .argument('[prefix]')
    .option('--limit <n>', 'at most this many keys', '10000')
    .action(async (prefix: string | undefined) => {
      const pfx = Buffer.from(prefix ?? '');
      const r = await cli.client
        .range({ key: pfx.length ? pfx : Buffer.from([0]), rangeEnd: pfx.length ? prefixEnd(pfx) : Buffer.from([0]), limit: 10000 })
        .catch((err) => fail(ExitCode.Error, errorText(err)));
      out(renderTree(r.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString() })), pfx.toString()));
      if (r.more) out(`... ${r.count - r.kvs.length} more keys\n`);
    });

  program
    .command('completion')
    .summary('nestcdctl: prints a shell completion script (bash or zsh)')
    .argument('[shell]')
    .action((shell: string | undefined) => {
      if (shell === 'bash') out(bashCompletion(program));
      else if (shell === 'zsh') out(zshCompletion(program));
      else fail(ExitCode.BadArgs, 'completion takes one argument: bash or zsh');
    });
}
