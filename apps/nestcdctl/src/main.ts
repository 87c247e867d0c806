import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '@nestcd/api';
import { parseConfig } from '@nestcd/config';
import { CLUSTER_VERSION, restoreSnapshot, SERVER_VERSION } from '@nestcd/server';
import { Command } from 'commander';
import { readFileSync } from 'node:fs';

// A first nestcdctl: the everyday key commands with etcdctl's output format. It grows in its own issue.

type Client = grpc.Client & Record<string, (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => void>;

// grpc-js names IP targets in the TLS ServerName, which node flags as deprecated; that is not for CLI users.
process.noDeprecation = true;

/** etcdctl's default --command-timeout. */
const COMMAND_TIMEOUT_MS = 5000;

interface GlobalOptions {
  endpoints: string;
  user?: string;
  password?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  insecureSkipTlsVerify?: boolean;
}

/** etcdctl's connection flags: https:// endpoints or --cacert/--cert/--key mean TLS; --user authenticates first. */
async function connect(service: 'KV'): Promise<{ client: Client; metadata: grpc.Metadata }> {
  const o = program.opts<GlobalOptions>();
  const raw = o.endpoints.split(',')[0].trim();
  const secure = raw.startsWith('https://') || Boolean(o.cacert || o.cert);
  const target = raw.replace(/^https?:\/\//, '');
  const file = (f?: string) => (f ? readFileSync(f) : null);
  const credentials = secure
    ? grpc.credentials.createSsl(file(o.cacert), file(o.key), file(o.cert), { rejectUnauthorized: !o.insecureSkipTlsVerify })
    : grpc.credentials.createInsecure();
  const proto = loadEtcdProto().etcdserverpb;
  const metadata = new grpc.Metadata();
  if (o.user) {
    const colon = o.user.indexOf(':');
    const name = colon < 0 ? o.user : o.user.slice(0, colon);
    const password = colon < 0 ? (o.password ?? '') : o.user.slice(colon + 1);
    const auth = new proto.Auth(target, credentials) as unknown as Client;
    try {
      const res = await call<{ token: string }>(auth, 'Authenticate', { name, password });
      metadata.set('token', res.token);
    } catch (err) {
      // etcd's clients go on without a token when auth is off
      if (!/authentication is not enabled/.test((err as grpc.ServiceError).details ?? '')) throw err;
    } finally {
      auth.close();
    }
  }
  return { client: new proto[service](target, credentials) as unknown as Client, metadata };
}

async function kv<T>(method: string, req: object): Promise<T> {
  const { client, metadata } = await connect('KV');
  return call<T>(client, method, req, metadata);
}

function call<T>(client: Client, method: string, req: object, md = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](req, md, { deadline: Date.now() + COMMAND_TIMEOUT_MS }, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

/** The key right after every key with this prefix, as etcd's clients compute it. */
function prefixEnd(key: Buffer): Buffer {
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

const program = new Command('nestcdctl')
  .description('A command line client for nestcd and etcd (v3 API)')
  .option('--endpoints <list>', 'gRPC endpoints', process.env.ETCDCTL_ENDPOINTS ?? '127.0.0.1:2379')
  .option('--user <name[:password]>', 'username[:password] for authentication', process.env.ETCDCTL_USER)
  .option('--password <password>', 'password for authentication (if this option is used, --user option shouldn\'t include password)', process.env.ETCDCTL_PASSWORD)
  .option('--cacert <file>', 'verify certificates of TLS-enabled secure servers using this CA bundle', process.env.ETCDCTL_CACERT)
  .option('--cert <file>', 'identify secure client using this TLS certificate file', process.env.ETCDCTL_CERT)
  .option('--key <file>', 'identify secure client using this TLS key file', process.env.ETCDCTL_KEY)
  .option('--insecure-skip-tls-verify', 'skip server certificate verification')
  .showHelpAfterError();

program.command('version').description('Prints the version of nestcdctl').action(() => {
  process.stdout.write(`nestcdctl version: ${SERVER_VERSION}\nAPI version: ${CLUSTER_VERSION.split('.').slice(0, 2).join('.')}\n`);
});

program.command('put <key> <value>').description('Puts the given key into the store').action(async (key: string, value: string) => {
  await kv('Put', { key: Buffer.from(key), value: Buffer.from(value) });
  process.stdout.write('OK\n');
});

program.command('get <key>').option('--prefix', 'Get keys with matching prefix')
  .description('Gets the key or a range of keys')
  .action(async (key: string, opts: { prefix?: boolean }) => {
    const k = Buffer.from(key);
    const res = await kv<{ kvs: { key: Buffer; value: Buffer }[] }>('Range', {
      key: k,
      rangeEnd: opts.prefix ? prefixEnd(k) : Buffer.alloc(0),
    });
    for (const kv of res.kvs) process.stdout.write(`${kv.key.toString()}\n${kv.value.toString()}\n`);
  });

program.command('del <key>').option('--prefix', 'delete keys with matching prefix')
  .description('Removes the specified key or range of keys')
  .action(async (key: string, opts: { prefix?: boolean }) => {
    const k = Buffer.from(key);
    const res = await kv<{ deleted: string }>('DeleteRange', {
      key: k,
      rangeEnd: opts.prefix ? prefixEnd(k) : Buffer.alloc(0),
    });
    process.stdout.write(`${res.deleted}\n`);
  });

/** A one-line progress bar on a terminal; nothing when piped. */
function progressBar(step: string, done: number, total: number): void {
  if (!process.stderr.isTTY) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${Math.round((done / total) * 100)}% ${step.padEnd(20)}`);
  if (done === total) process.stderr.write('\n');
}

const snapshot = program.command('snapshot').description('Manages nestcd node snapshots');
snapshot.command('restore <file>')
  .description('Restores a nestcd member snapshot (from `snapshot save`) to a new data directory')
  .option('--data-dir <dir>', 'Path to the data directory (default: <name>.nestcd)')
  .option('--wal-dir <dir>', 'Path to the WAL directory (default: data-dir/member/wal)')
  .option('--name <name>', 'Human-readable name for this member', 'default')
  .option('--initial-cluster <list>', 'Initial cluster configuration for restore bootstrap')
  .option('--initial-cluster-token <token>', 'Initial cluster token for the cluster during restore bootstrap', 'etcd-cluster')
  .option('--initial-advertise-peer-urls <urls>', "List of this member's peer URLs to advertise", 'http://localhost:2380')
  .action(async (file: string, opts: Record<string, string | undefined>) => {
    const argv: string[] = ['--name', opts.name!, '--initial-cluster-token', opts.initialClusterToken!, '--initial-advertise-peer-urls', opts.initialAdvertisePeerUrls!];
    if (opts.dataDir) argv.push('--data-dir', opts.dataDir);
    if (opts.walDir) argv.push('--wal-dir', opts.walDir);
    if (opts.initialCluster) argv.push('--initial-cluster', opts.initialCluster);
    const parsed = parseConfig(argv, {});
    if (parsed.kind !== 'run') throw new Error('unexpected arguments');
    const r = await restoreSnapshot(file, parsed.config, progressBar);
    process.stdout.write(
      `restored snapshot ${file} to ${parsed.config.dataDir}: member ${r.memberId.toString(16)} of cluster ${r.clusterId.toString(16)}, ` +
        `revision ${r.revision}, ${r.keys} keys\n`,
    );
  });

program.parseAsync(process.argv).then(
  () => process.exit(0),
  (err: grpc.ServiceError & Error) => {
    process.stderr.write(`Error: ${err.details ?? err.message}\n`);
    process.exit(1);
  },
);
