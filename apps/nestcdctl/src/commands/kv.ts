// get, put, del, txn, compaction.
import { prefixEnd, type Compare, type DeleteRangeRequest, type PutRequest, type RangeRequest, type RequestOp, type SortTarget } from '@nestcd/client';
import { Command, Option } from 'commander';
import { argify, type Cli, StdinLines, readStdin } from '../cli';
import { CtlError, ExitCode, fail, out } from '../context';
import { goParseInt, goQuote } from '../format';

const FROM_KEY_END = Buffer.from([0]);
type Opts = Record<string, string | boolean | undefined>;

function intFlag(flag: string, v: string | boolean | undefined): number {
  if (v === undefined || v === false) return 0;
  try {
    return Number(goParseInt(String(v), 10));
  } catch (err) {
    throw new CtlError(ExitCode.Error, `invalid argument ${goQuote(String(v))} for "--${flag}" flag: ${(err as Error).message}`, true);
  }
}

export function defineGet(cmd: Command): Command {
  return cmd
    .option('--consistency <l|s>', 'Linearizable(l) or Serializable(s)', 'l')
    .option('--order <order>', 'Order of results; ASCEND or DESCEND (ASCEND by default)', '')
    .option('--sort-by <target>', 'Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION', '')
    .option('--limit <n>', 'Maximum number of results', '0')
    .option('--prefix', 'Get keys with matching prefix')
    .option('--from-key', 'Get keys that are greater than or equal to the given key using byte compare')
    .option('--rev <n>', 'Specify the kv revision', '0')
    .option('--keys-only', 'Get only the keys')
    .option('--print-value-only', 'Only write values when using the "simple" output format');
}

export function getRequest(args: string[], o: Opts): RangeRequest {
  if (args.length === 0) fail(ExitCode.BadArgs, 'get command needs one argument as key and an optional argument as range_end');
  if (o.prefix && o.fromKey) fail(ExitCode.BadArgs, '`--prefix` and `--from-key` cannot be set at the same time, choose one');
  const req: RangeRequest = { key: Buffer.from(args[0]) };
  const consistency = String(o.consistency ?? 'l');
  if (consistency === 's') req.serializable = true;
  else if (consistency !== 'l') fail(ExitCode.BadFeature, `unknown consistency flag ${goQuote(consistency)}`);
  if (args.length > 1) {
    if (o.prefix || o.fromKey) fail(ExitCode.BadArgs, 'too many arguments, only accept one argument when `--prefix` or `--from-key` is set');
    req.rangeEnd = Buffer.from(args[1]);
  }
  req.limit = intFlag('limit', o.limit);
  req.revision = intFlag('rev', o.rev);
  const order = String(o.order ?? '').toUpperCase();
  let sortOrder: RangeRequest['sortOrder'] = 'none';
  if (order === 'ASCEND') sortOrder = 'ascend';
  else if (order === 'DESCEND') sortOrder = 'descend';
  else if (order !== '') fail(ExitCode.BadFeature, `bad sort order ${o.order}`);
  const targets: Record<string, SortTarget> = { CREATE: 'create', KEY: 'key', MODIFY: 'mod', VALUE: 'value', VERSION: 'version', '': 'key' };
  const target = targets[String(o.sortBy ?? '').toUpperCase()];
  if (!target) fail(ExitCode.BadFeature, `bad sort target ${o.sortBy}`);
  // clientv3.WithSort: ascending by key is the server's natural order, sent as no sort.
  req.sortTarget = target;
  req.sortOrder = target === 'key' && sortOrder === 'ascend' ? 'none' : sortOrder;
  if (o.prefix) {
    if (req.key.length === 0) {
      req.key = Buffer.from([0]);
      req.rangeEnd = FROM_KEY_END;
    } else req.rangeEnd = prefixEnd(req.key);
  }
  if (o.fromKey) {
    if (req.key.length === 0) req.key = Buffer.from([0]);
    req.rangeEnd = FROM_KEY_END;
  }
  if (o.keysOnly) req.keysOnly = true;
  return req;
}

export function definePut(cmd: Command): Command {
  return cmd
    .option('--lease <id>', 'lease ID (in hexadecimal) to attach to the key', '0')
    .option('--prev-kv', 'return the previous key-value pair before modification')
    .option('--ignore-value', 'updates the key using its current value')
    .option('--ignore-lease', 'updates the key using its current lease');
}

export async function putRequest(args: string[], o: Opts, stdin: () => Promise<Buffer>): Promise<PutRequest> {
  const usage = 'put command needs 1 argument and input from stdin or 2 arguments';
  if (args.length === 0) fail(ExitCode.BadArgs, usage);
  if (o.ignoreValue && args.length > 1) fail(ExitCode.BadArgs, "put command needs only 1 argument when 'ignore-value' is set");
  let value: Buffer = Buffer.alloc(0);
  if (!o.ignoreValue) {
    if (args.length > 1) value = Buffer.from(args[1]);
    else {
      value = await stdin();
      if (value.length === 0) fail(ExitCode.BadArgs, usage);
    }
  }
  let lease: bigint;
  try {
    lease = goParseInt(String(o.lease ?? '0'), 16);
  } catch (err) {
    return fail(ExitCode.BadArgs, `bad lease ID (${(err as Error).message}), expecting ID in Hex`);
  }
  return { key: Buffer.from(args[0]), value, lease, prevKv: !!o.prevKv, ignoreValue: !!o.ignoreValue, ignoreLease: !!o.ignoreLease };
}

export function defineDel(cmd: Command): Command {
  return cmd
    .option('--prefix', 'delete keys with matching prefix')
    .option('--prev-kv', 'return deleted key-value pairs')
    .option('--from-key', 'delete keys that are greater than or equal to the given key using byte compare');
}

export function delRequest(args: string[], o: Opts): DeleteRangeRequest {
  if (args.length === 0) fail(ExitCode.BadArgs, 'del command needs one argument as key and an optional argument as range_end');
  if (o.prefix && o.fromKey) fail(ExitCode.BadArgs, '`--prefix` and `--from-key` cannot be set at the same time, choose one');
  const req: DeleteRangeRequest = { key: Buffer.from(args[0]), prevKv: !!o.prevKv };
  if (args.length > 1) {
    if (o.prefix || o.fromKey) fail(ExitCode.BadArgs, 'too many arguments, only accept one argument when `--prefix` or `--from-key` is set.');
    req.rangeEnd = Buffer.from(args[1]);
  }
  if (o.prefix) {
    if (req.key.length === 0) {
      req.key = Buffer.from([0]);
      req.rangeEnd = FROM_KEY_END;
    } else req.rangeEnd = prefixEnd(req.key);
  }
  if (o.fromKey) {
    if (req.key.length === 0) req.key = Buffer.from([0]);
    req.rangeEnd = FROM_KEY_END;
  }
  return req;
}

// ---- txn ----

/** One `cmp("key") op "value"` line, as etcdctl's ParseCompare (3.4). */
export function parseCompare(line: string): Compare {
  const m = /^([a-z]+)\("((?:[^"\\]|\\.)*)"\) (\S+) "((?:[^"\\]|\\.)*)"$/.exec(line);
  const paren = line.indexOf('(');
  if (paren < 0 || !m) throw new CtlError(ExitCode.InvalidInput, `malformed comparison: ${line}`);
  const unq = (s: string) => JSON.parse(`"${s}"`) as string;
  const [, target, rawKey, op, rawVal] = m;
  const key = Buffer.from(unq(rawKey));
  const val = unq(rawVal);
  const results: Record<string, Compare['result']> = { '=': 'equal', '==': 'equal', '!=': 'not_equal', '<': 'less', '>': 'greater' };
  const result = results[op];
  const bad = () => new CtlError(ExitCode.InvalidInput, `invalid txn compare request: ${line}`);
  const int = (base: 10 | 16) => {
    try {
      return goParseInt(val, base);
    } catch {
      throw bad();
    }
  };
  let cmp: Compare;
  switch (target) {
    case 'ver':
    case 'version':
      cmp = { key, target: 'version', result, value: Number(int(10)) };
      break;
    case 'c':
    case 'create':
      cmp = { key, target: 'create', result, value: Number(int(10)) };
      break;
    case 'm':
    case 'mod':
      cmp = { key, target: 'mod', result, value: Number(int(10)) };
      break;
    case 'val':
    case 'value':
      cmp = { key, target: 'value', result, value: Buffer.from(val) };
      break;
    case 'lease':
      cmp = { key, target: 'lease', result, value: int(16) };
      break;
    default:
      throw new CtlError(ExitCode.InvalidInput, `malformed comparison: ${line}`);
  }
  if (!result) throw new CtlError(ExitCode.InvalidInput, `malformed comparison: ${line}`);
  return cmp;
}

/** One `get|put|del ...` line, parsed with the same flags as the top-level commands. */
export async function parseRequestOp(line: string): Promise<RequestOp> {
  const args = argify(line);
  const invalid = () => new CtlError(ExitCode.InvalidInput, `invalid txn request: ${line}`);
  if (args.length < 2) throw new CtlError(ExitCode.InvalidInput, `invalid txn compare request: ${line}`);
  let op: RequestOp | undefined;
  const quiet = (c: Command) => c.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined }).allowExcessArguments();
  const root = quiet(new Command('txn'));
  quiet(defineGet(root.command('get').argument('[args...]'))).action((a: string[], o: Opts) => {
    op = { range: getRequest(a, o) };
  });
  quiet(definePut(root.command('put').argument('[args...]'))).action(async (a: string[], o: Opts) => {
    op = { put: await putRequest(a, o, async () => Buffer.alloc(0)) };
  });
  quiet(defineDel(root.command('del').argument('[args...]'))).action((a: string[], o: Opts) => {
    op = { deleteRange: delRequest(a, o) };
  });
  try {
    await root.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CtlError && err.code !== ExitCode.BadArgs) throw err;
    if (err instanceof CtlError) {
      // a nested command's own usage error, printed like etcdctl does (it exits from inside the parser).
      throw err;
    }
    throw invalid();
  }
  if (!op) throw invalid();
  return op;
}

export function registerKv(program: Command, cli: Cli): void {
  defineGet(program.command('get').summary('Gets the key or a range of keys').argument('[args...]'))
    .usage('[options] <key> [range_end]')
    .action(async (args: string[], o: Opts) => {
      const req = getRequest(args, o);
      const p = cli.printer(!!o.printValueOnly);
      out(p.get(await cli.client.range(req)));
    });

  definePut(program.command('put').summary('Puts the given key into the store').argument('[args...]'))
    .usage('[options] <key> <value> (<value> can also be given from stdin)')
    .action(async (args: string[], o: Opts) => {
      const req = await putRequest(args, o, readStdin);
      const p = cli.printer();
      out(p.put(await cli.client.put(req)));
    });

  defineDel(program.command('del').summary('Removes the specified key or range of keys [key, range_end)').argument('[args...]'))
    .usage('[options] <key> [range_end]')
    .action(async (args: string[], o: Opts) => {
      const req = delRequest(args, o);
      const p = cli.printer();
      out(p.del(await cli.client.deleteRange(req)));
    });

  program
    .command('txn')
    .summary('Txn processes all the requests in one transaction')
    .usage('[options]')
    .argument('[args...]')
    .option('-i, --interactive', 'Input transaction in interactive mode')
    .addOption(new Option('--no-interactive').hideHelp())
    .action(async (args: string[], o: Opts) => {
      if (args.length) fail(ExitCode.BadArgs, 'txn command does not accept argument');
      const lines = new StdinLines();
      const prompt = (s: string) => o.interactive && out(`${s}\n`);
      const section = async <T>(parse: (line: string) => T | Promise<T>): Promise<T[]> => {
        const items: T[] = [];
        for (;;) {
          const raw = await lines.next();
          if (raw === null) fail(ExitCode.InvalidInput, 'EOF');
          const line = raw!.trim();
          if (!line) return items;
          items.push(await parse(line));
        }
      };
      prompt('compares:');
      const compare = await section(parseCompare);
      prompt('success requests (get, put, del):');
      const success = await section(parseRequestOp);
      prompt('failure requests (get, put, del):');
      const failure = await section(parseRequestOp);
      const p = cli.printer();
      out(p.txn(await cli.client.txn({ compare, success, failure })));
    });

  program
    .command('compaction')
    .summary('Compacts the event history in etcd')
    .usage('[options] <revision>')
    .argument('[args...]')
    .option('--physical', "'true' to wait for compaction to physically remove all old revisions")
    .action(async (args: string[], o: Opts) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'compaction command needs 1 argument');
      let rev: bigint;
      try {
        rev = goParseInt(args[0], 10);
      } catch (err) {
        return fail(ExitCode.Error, (err as Error).message);
      }
      await cli.client.compact(Number(rev), !!o.physical);
      out(`compacted revision ${rev}\n`);
    });
}
