// watch: etcdctl's output when piped; on a terminal (simple format) a coloured one-line-per-event view.
import { prefixEnd, type WatchBatch, type WatchRequest } from '@nestcd/client';
import { spawnSync } from 'node:child_process';
import { Command, Option } from 'commander';
import { type Cli, StdinLines, argify } from '../cli';
import { CtlError, errOut, ExitCode, fail, out } from '../context';
import { goQuote } from '../format';

interface WatchOpts {
  interactive?: boolean;
  prefix?: boolean;
  rev?: string;
  prevKv?: boolean;
}

const FROM_KEY_END = Buffer.from([0]);

/** Splits `[key] [range_end] [--] [command ...]` as etcdctl 3.4's getWatchArgs. */
export function splitWatchArgs(args: string[], dashAt: number): { keyArgs: string[]; exec: string[] } {
  if (dashAt >= 0) return { keyArgs: args.slice(0, dashAt), exec: args.slice(dashAt) };
  return { keyArgs: args, exec: [] };
}

function watchRequest(keyArgs: string[], o: WatchOpts): WatchRequest {
  const req: WatchRequest = { key: Buffer.from(keyArgs[0] ?? ''), prevKv: !!o.prevKv, startRevision: Number(o.rev ?? 0) };
  if (keyArgs.length > 1) {
    if (o.prefix) fail(ExitCode.BadArgs, 'too many arguments, only accept one argument when `--prefix` is set.');
    req.rangeEnd = Buffer.from(keyArgs[1]);
  }
  if (o.prefix) req.rangeEnd = req.key.length ? prefixEnd(req.key) : FROM_KEY_END;
  if (o.prefix && req.key.length === 0) req.key = Buffer.from([0]);
  return req;
}

const C = { reset: '\x1b[0m', dim: '\x1b[2m', green: '\x1b[32m', red: '\x1b[31m', cyan: '\x1b[36m', bold: '\x1b[1m' };

/** The terminal view: `[rev 21] PUT  w = 1  (was 0)`. */
function pretty(b: WatchBatch): string {
  return b.events
    .map((e) => {
      const type = e.type === 'put' ? `${C.green}PUT   ${C.reset}` : `${C.red}DELETE${C.reset}`;
      const rev = `${C.dim}[rev ${e.kv.modRevision}]${C.reset}`;
      const val = e.type === 'put' ? ` ${C.dim}=${C.reset} ${e.kv.value.toString()}` : '';
      const prev = e.prevKv ? ` ${C.dim}(was ${e.prevKv.value.toString()})${C.reset}` : '';
      return `${rev} ${type} ${C.bold}${C.cyan}${e.kv.key.toString()}${C.reset}${val}${prev}\n`;
    })
    .join('');
}

export function registerWatch(program: Command, cli: Cli): void {
  program
    .command('watch')
    .summary('Watches events stream on keys or prefixes')
    .usage('[options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]')
    .argument('[args...]')
    .option('-i, --interactive', 'Interactive mode')
    .addOption(new Option('--no-interactive').hideHelp())
    .option('--prefix', 'Watch on a prefix if prefix is set')
    .option('--rev <rev>', 'Revision to start watching', '0')
    .option('--prev-kv', 'get the previous key-value pair before the event happens')
    .action(async (args: string[], o: WatchOpts, cmd: Command) => {
      const raw = process.argv;
      const dash = raw.indexOf('--');
      // commander drops `--`; the words after it in argv are the command to run.
      const after = dash >= 0 ? raw.slice(dash + 1) : [];
      const keyArgs = dash >= 0 ? args.slice(0, args.length - after.length) : args;
      void cmd;
      const p = cli.printer();
      p.checkOnly(['simple', 'json', 'fields']);
      const tty = process.stdout.isTTY && cli.globals.writeOut === 'simple' && !cli.globals.hex && !process.env.NO_COLOR;

      const run = (req: WatchRequest, exec: string[]) =>
        new Promise<never>((_resolve, reject) => {
          cli.client.watch(req, {
            onEvents(batch) {
              out(tty ? pretty(batch) : p.watch(batch));
              if (exec.length) {
                for (const e of batch.events) {
                  const r = spawnSync(exec[0], exec.slice(1), {
                    stdio: 'inherit',
                    env: {
                      ...process.env,
                      ETCD_WATCH_REVISION: String(batch.header.revision),
                      ETCD_WATCH_KEY: goQuote(e.kv.key),
                      ETCD_WATCH_EVENT_TYPE: goQuote(e.type.toUpperCase()),
                      ETCD_WATCH_VALUE: goQuote(e.kv.value),
                    },
                  });
                  if (r.error || r.status !== 0) {
                    errOut(`command ${goQuote(exec.join(' '))} error (${r.error?.message ?? `exit status ${r.status}`})\n`);
                  }
                }
              }
            },
            onCompacted() {
              errOut('watch was canceled (etcdserver: mvcc: required revision has been compacted)\n');
              reject(new CtlError(ExitCode.Interrupted, 'watch is canceled by the server'));
            },
            onError(err) {
              if (cli.closing) return;
              errOut(`watch was canceled (${err.message})\n`);
              reject(new CtlError(ExitCode.Interrupted, 'watch is canceled by the server'));
            },
          });
        });

      if (o.interactive) {
        if (keyArgs.length) fail(ExitCode.BadArgs, 'watch in interactive mode does not take arguments');
        const lines = new StdinLines();
        const watches: Promise<never>[] = [];
        const failed = new Promise<never>((_r, reject) => {
          void (async () => {
            for (;;) {
              const line = await lines.next();
              if (line === null) {
                cli.closing = true;
                return reject(new CtlError(ExitCode.InvalidInput, 'Error reading watch request line: EOF'));
              }
              const words = argify(line.trim());
              if (words[0] !== 'watch') {
                errOut(`Invalid command ${line.trim()} (only support watch)\n`);
                continue;
              }
              const sub = new Command('watch')
                .exitOverride()
                .configureOutput({ writeErr: () => undefined })
                .allowExcessArguments()
                .argument('[args...]')
                .option('--prefix')
                .option('--rev <rev>', '', '0')
                .option('--prev-kv');
              try {
                sub.parse(words.slice(1), { from: 'user' });
              } catch {
                errOut(`Invalid command ${line.trim()}\n`);
                continue;
              }
              const subArgs = sub.args;
              const d = words.indexOf('--');
              const exec = d >= 0 ? words.slice(d + 1) : [];
              const keys = d >= 0 ? subArgs.slice(0, subArgs.length - exec.length) : subArgs;
              if (keys.length === 0) {
                errOut(`Invalid command ${line.trim()} (watch command needs one argument as key)\n`);
                continue;
              }
              watches.push(run(watchRequest(keys, sub.opts()), exec).catch((e) => reject(e)) as Promise<never>);
            }
          })();
        });
        await failed;
        return;
      }
      if (keyArgs.length === 0 || keyArgs.length > 2) fail(ExitCode.BadArgs, 'bad number of arguments');
      await run(watchRequest(keyArgs, o), after);
    });
}
