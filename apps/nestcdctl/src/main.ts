// nestcdctl: etcdctl v3's commands, flags, ETCDCTL_* variables, output formats and exit codes, against nestcd
// or real etcd, plus `check perf`, `tree` and shell completion.
// @nestcd/server and @nestcd/config are loaded only by the commands that need them (version, snapshot restore):
// loading the server costs a second of start-up on every other command.
// grpc-js names an IP endpoint as the TLS server name, which Node answers with a deprecation warning on stderr;
// etcdctl's output has no such line, and scripts compare it.
process.noDeprecation = true;
type ServerLib = typeof import('./server-lib');
const serverLib = (): ServerLib => require('./server-lib') as ServerLib;
import { Command, CommanderError, Option } from 'commander';
import { Cli } from './cli';
import { readFileSync } from 'node:fs';
import { humanBytes, renderTable } from './format';
import { snapshotStatus, type SnapshotStatus } from './snapshot-status';
import { registerAuth } from './commands/auth';
import { registerCluster } from './commands/cluster';
import { registerConcurrency } from './commands/concurrency';
import { registerExtras } from './commands/extras';
import { registerKv } from './commands/kv';
import { registerLease } from './commands/lease';
import { registerWatch } from './commands/watch';
import { CtlError, errorText, ExitCode } from './context';

/** Global flags and the environment variable each falls back to, as etcdctl's. */
const GLOBALS: { flags: string; env: string; desc: string; def?: string; bool?: boolean }[] = [
  { flags: '--endpoints <list>', env: 'ETCDCTL_ENDPOINTS', desc: 'gRPC endpoints', def: '127.0.0.1:2379' },
  { flags: '--dial-timeout <duration>', env: 'ETCDCTL_DIAL_TIMEOUT', desc: 'dial timeout for client connections', def: '2s' },
  { flags: '--command-timeout <duration>', env: 'ETCDCTL_COMMAND_TIMEOUT', desc: 'timeout for short running command (excluding dial timeout)', def: '5s' },
  { flags: '-w, --write-out <format>', env: 'ETCDCTL_WRITE_OUT', desc: 'set the output format (fields, json, simple, table)', def: 'simple' },
  { flags: '--hex', env: 'ETCDCTL_HEX', desc: 'print byte strings as hex encoded strings', bool: true },
  { flags: '--user <user>', env: 'ETCDCTL_USER', desc: 'username[:password] for authentication (prompt if password is not supplied)' },
  { flags: '--password <password>', env: 'ETCDCTL_PASSWORD', desc: 'password for authentication (if this option is used, --user option shouldn\'t include password)' },
  { flags: '--cacert <file>', env: 'ETCDCTL_CACERT', desc: 'verify certificates of TLS-enabled secure servers using this CA bundle' },
  { flags: '--cert <file>', env: 'ETCDCTL_CERT', desc: 'identify secure client using this TLS certificate file' },
  { flags: '--key <file>', env: 'ETCDCTL_KEY', desc: 'identify secure client using this TLS key file' },
  { flags: '--insecure-skip-tls-verify', env: 'ETCDCTL_INSECURE_SKIP_TLS_VERIFY', desc: 'skip server certificate verification', bool: true },
  { flags: '--insecure-transport', env: 'ETCDCTL_INSECURE_TRANSPORT', desc: 'disable transport security for client connections', bool: true },
  { flags: '--keepalive-time <duration>', env: 'ETCDCTL_KEEPALIVE_TIME', desc: 'keepalive time for client connections', def: '2s' },
  { flags: '--keepalive-timeout <duration>', env: 'ETCDCTL_KEEPALIVE_TIMEOUT', desc: 'keepalive timeout for client connections', def: '6s' },
  { flags: '--debug', env: 'ETCDCTL_DEBUG', desc: 'enable client-side debug logging', bool: true },
];

/** pflag's boolean flags take `--flag=true|false`; commander's don't, so those are rewritten first. */
export function normalizeArgv(argv: string[]): string[] {
  const outArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      outArgs.push(...argv.slice(i));
      break;
    }
    const m = /^(--[a-z][a-z0-9-]*)=(true|false)$/.exec(a);
    if (m && BOOLEAN_FLAGS.has(m[1])) {
      if (m[2] === 'true') outArgs.push(m[1]);
      // flags that default to true (user add/passwd --interactive) are turned off with commander's --no- form.
      else if (DEFAULT_TRUE_FLAGS.has(m[1])) outArgs.push(`--no-${m[1].slice(2)}`);
      continue;
    }
    outArgs.push(a);
  }
  return outArgs;
}

const BOOLEAN_FLAGS = new Set([
  '--prefix', '--from-key', '--keys-only', '--print-value-only', '--prev-kv', '--ignore-value', '--ignore-lease', '--hex',
  '--physical', '--keys', '--once', '--interactive', '--cluster', '--learner', '--listen', '--debug', '--insecure-skip-tls-verify',
  '--insecure-transport', '--insecure-discovery', '--detail', '--no-password',
]);
const DEFAULT_TRUE_FLAGS = new Set(['--interactive']);

/** etcdctl 3.4 refuses a flag that is also set through its ETCDCTL_* variable. */
function conflictingEnv(argv: string[]): string | undefined {
  for (const g of GLOBALS) {
    const long = /--[a-z-]+/.exec(g.flags)![0];
    if (process.env[g.env] !== undefined && argv.some((a) => a === long || a.startsWith(`${long}=`))) return g.env;
  }
  return undefined;
}

function envBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  return ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v);
}

export function buildProgram(): { program: Command; cli: Cli } {
  const program = new Command('nestcdctl')
    .description('A simple command line client for etcd3 and nestcd.')
    .usage('[global options] command [command options] [arguments...]')
    .helpOption('-h, --help', 'help for nestcdctl')
    .allowExcessArguments();
  for (const g of GLOBALS) {
    const opt = new Option(g.flags, g.desc);
    const fromEnv = process.env[g.env];
    if (g.bool) {
      const v = envBool(fromEnv);
      if (v) opt.default(true);
    } else if (fromEnv !== undefined) opt.default(fromEnv);
    else if (g.def !== undefined) opt.default(g.def);
    program.addOption(opt);
  }
  const cli = new Cli(program);

  program.command('version').summary('Prints the version of nestcdctl').action(() => {
    const { SERVER_VERSION, CLUSTER_VERSION } = serverLib();
    process.stdout.write(`nestcdctl version: ${SERVER_VERSION}\nAPI version: ${CLUSTER_VERSION.split('.').slice(0, 2).join('.')}\n`);
  });
  registerKv(program, cli);
  registerWatch(program, cli);
  registerLease(program, cli);
  registerCluster(program, cli);
  registerSnapshotRestore(program);
  registerSnapshotStatus(program, cli);
  registerConcurrency(program, cli);
  registerAuth(program, cli);
  registerExtras(program, cli);

  // etcdctl authenticates while it connects (before the command's call): a bad password fails with
  // ExitBadConnection, and a server without auth only logs the refused Authenticate.
  program.hook('preAction', async (_program, action) => {
    if (!LOCAL_COMMANDS.has(commandPath(action)) && cli.globals.user) await cli.login();
  });

  // Every command: errors come back to us (no commander exit), output like cobra's.
  const configure = (c: Command) => {
    c.exitOverride();
    c.configureOutput({ writeErr: () => undefined });
    c.allowExcessArguments();
    c.commands.forEach(configure);
  };
  configure(program);
  return { program, cli };
}

/** Commands that never talk to a server. */
const LOCAL_COMMANDS = new Set(['version', 'completion', 'snapshot restore', 'snapshot status']);

function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x?.parent; x = x.parent) names.unshift(x.name());
  return names.join(' ');
}

/** A one-line progress bar on a terminal; nothing when piped. */
function progressBar(step: string, done: number, total: number): void {
  if (!process.stderr.isTTY) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${Math.round((done / total) * 100)}% ${step.padEnd(20)}`);
  if (done === total) process.stderr.write('\n');
}

function registerSnapshotStatus(program: Command, cli: Cli): void {
  const snapshot = program.commands.find((c) => c.name() === 'snapshot')!;
  snapshot
    .command('status')
    .summary('Gets backend snapshot status of a given file')
    .usage('<filename>')
    .argument('[args...]')
    .action((args: string[]) => {
      if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, 'snapshot status requires exactly one argument');
      let file: Buffer;
      try {
        file = readFileSync(args[0]);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new CtlError(ExitCode.Error, e.code === 'ENOENT' ? `stat ${args[0]}: no such file or directory` : e.message);
      }
      let s: SnapshotStatus;
      try {
        // etcd's snapshot (a bbolt file) as etcdctl reads it; otherwise a nestcd one (loading the server code).
        s = snapshotStatus(file, (f) => serverLib().nestcdSnapshotStatus(f));
      } catch (err) {
        throw new CtlError(ExitCode.Error, (err as Error).message);
      }
      const out = (text: string): void => {
        process.stdout.write(text);
      };
      switch (cli.globals.writeOut) {
        case 'json':
          return out(`{"hash":${s.hash},"revision":${s.revision},"totalKey":${s.totalKey},"totalSize":${s.totalSize}}\n`);
        case 'fields':
          return out(`"Hash" : ${s.hash}\n"Revision" : ${s.revision}\n"Keys" : ${s.totalKey}\n"Size" : ${s.totalSize}\n`);
        case 'table':
          return out(renderTable(['hash', 'revision', 'total keys', 'total size'], [[s.hash.toString(16), String(s.revision), String(s.totalKey), humanBytes(s.totalSize)]]));
        default:
          return out(`${s.hash.toString(16)}, ${s.revision}, ${s.totalKey}, ${humanBytes(s.totalSize)}\n`);
      }
    });
}

function registerSnapshotRestore(program: Command): void {
  const snapshot = program.commands.find((c) => c.name() === 'snapshot')!;
  snapshot
    .command('restore <file>')
    .summary('Restores a nestcd member snapshot (from `snapshot save`) to a new data directory')
    .option('--data-dir <dir>', 'Path to the data directory (default: <name>.nestcd)')
    .option('--wal-dir <dir>', 'Path to the WAL directory (default: data-dir/member/wal)')
    .option('--name <name>', 'Human-readable name for this member', 'default')
    .option('--initial-cluster <list>', 'Initial cluster configuration for restore bootstrap')
    .option('--initial-cluster-token <token>', 'Initial cluster token for the cluster during restore bootstrap', 'etcd-cluster')
    .option('--initial-advertise-peer-urls <urls>', "List of this member's peer URLs to advertise", 'http://localhost:2380')
    .option('--skip-hash-check', 'Ignore snapshot integrity hash value (accepted for etcdctl compatibility)')
    .action(async (file: string, opts: Record<string, string | undefined>) => {
      const argv: string[] = ['--name', opts.name!, '--initial-cluster-token', opts.initialClusterToken!, '--initial-advertise-peer-urls', opts.initialAdvertisePeerUrls!];
      if (opts.dataDir) argv.push('--data-dir', opts.dataDir);
      if (opts.walDir) argv.push('--wal-dir', opts.walDir);
      if (opts.initialCluster) argv.push('--initial-cluster', opts.initialCluster);
      const parsed = serverLib().parseConfig(argv, {});
      if (parsed.kind !== 'run') throw new CtlError(ExitCode.BadArgs, 'unexpected arguments');
      const r = await serverLib().restoreSnapshot(file, parsed.config, progressBar);
      process.stdout.write(
        `restored snapshot ${file} to ${parsed.config.dataDir}: member ${r.memberId.toString(16)} of cluster ${r.clusterId.toString(16)}, ` +
          `revision ${r.revision}, ${r.keys} keys\n`,
      );
    });
}

/** Maps commander's parse errors to cobra's words and exit codes. */
function commanderFailure(err: CommanderError, program: Command): number {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
  const name = program.name();
  let msg = err.message.replace(/^error: /, '');
  let m: RegExpExecArray | null;
  if ((m = /^unknown option '(-[^-'])([^']*)'/.exec(msg))) msg = `unknown shorthand flag: '${m[1].slice(1)}' in ${m[1]}${m[2]}`;
  else if ((m = /^unknown option '([^']+)'/.exec(msg))) msg = `unknown flag: ${m[1]}`;
  else if ((m = /^unknown command '([^']+)'/.exec(msg))) {
    process.stderr.write(`Error: unknown command ${JSON.stringify(m[1])} for ${JSON.stringify(name)}\nRun '${name} --help' for usage.\n`);
    process.stderr.write(`Error: unknown command ${JSON.stringify(m[1])} for ${JSON.stringify(name)}\n`);
    return ExitCode.Error;
  } else if ((m = /^option '(?:-\w, )?(--[\w-]+)[^']*' argument missing/.exec(msg))) msg = `flag needs an argument: ${m[1]}`;
  process.stderr.write(`Error: ${msg}\n\nError: ${msg}\n`);
  return ExitCode.Error;
}

export async function main(argv: string[]): Promise<number> {
  const userArgs = normalizeArgv(argv.slice(2));
  const conflict = conflictingEnv(userArgs);
  if (conflict) {
    const ts = new Date().toISOString().replace('T', ' ').replace('Z', '').slice(0, 23);
    process.stderr.write(
      `${ts}000 C | pkg/flags: conflicting environment variable ${JSON.stringify(conflict)} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n`,
    );
    return ExitCode.Error;
  }
  const { program, cli } = buildProgram();
  if (userArgs.length === 0) {
    process.stdout.write(program.helpInformation());
    return 0;
  }
  try {
    await program.parseAsync(userArgs, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return commanderFailure(err, program);
    if (err instanceof CtlError) {
      process.stderr.write(err.usage ? `Error: ${err.message}\n\nError: ${err.message}\n` : `Error: ${err.message}\n`);
      return err.code;
    }
    process.stderr.write(`Error: ${errorText(err)}\n`);
    return ExitCode.Error;
  } finally {
    await cli.close();
  }
}

// Runs when loaded as the program (bin/nestcdctl requires this file), not when a test imports buildProgram.
if (!process.env.NESTCDCTL_NO_MAIN) {
  main(process.argv).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`Error: ${(err as Error)?.message ?? err}\n`);
      process.exit(ExitCode.Error);
    },
  );
}
