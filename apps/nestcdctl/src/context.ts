// Global flags, environment, the client and etcdctl's exit codes.
import { ClientError, createRemoteClient, type RemoteClient } from '@nestcd/client';
import { randomUUID } from 'node:crypto';
import { parseGoDuration } from './format';

/** etcdctl's exit codes (ctlv3/command/error.go). */
export const ExitCode = {
  Success: 0,
  Error: 1,
  BadConnection: 2,
  InvalidInput: 3,
  BadFeature: 4,
  Interrupted: 5,
  IO: 6,
  BadArgs: 128,
} as const;

/** Thrown by commands: printed as `Error: <message>` and the process exits with `code`. */
export class CtlError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** a flag-parsing error: cobra prints it before and after the usage. */
    readonly usage = false,
  ) {
    super(message);
  }
}

export const fail = (code: number, message: string): never => {
  throw new CtlError(code, message);
};

export type WriteOut = 'simple' | 'json' | 'fields' | 'table' | 'protobuf';

export interface GlobalOptions {
  endpoints: string[];
  dialTimeoutMs: number;
  commandTimeoutMs: number;
  writeOut: WriteOut;
  hex: boolean;
  user?: string;
  password?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  insecureSkipTlsVerify: boolean;
}

/** Raw global option values from commander (flags win over ETCDCTL_* variables, applied as defaults). */
export interface RawGlobals {
  endpoints: string[] | string;
  dialTimeout: string;
  commandTimeout: string;
  writeOut: string;
  hex?: boolean;
  user?: string;
  password?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  insecureSkipTlsVerify?: boolean;
}

export function resolveGlobals(raw: RawGlobals): GlobalOptions {
  const eps = (Array.isArray(raw.endpoints) ? raw.endpoints : [raw.endpoints])
    .flatMap((e) => e.split(','))
    .map((e) => e.trim())
    .filter(Boolean);
  const duration = (flag: string, v: string) => {
    try {
      return parseGoDuration(v);
    } catch (err) {
      throw new CtlError(ExitCode.Error, `invalid argument ${JSON.stringify(v)} for "--${flag}" flag: ${(err as Error).message}`, true);
    }
  };
  const writeOut = raw.writeOut as WriteOut;
  return {
    endpoints: eps.length ? eps : ['127.0.0.1:2379'],
    dialTimeoutMs: duration('dial-timeout', raw.dialTimeout),
    commandTimeoutMs: duration('command-timeout', raw.commandTimeout),
    writeOut,
    hex: !!raw.hex,
    user: raw.user,
    password: raw.password,
    cacert: raw.cacert,
    cert: raw.cert,
    key: raw.key,
    insecureSkipTlsVerify: !!raw.insecureSkipTlsVerify,
  };
}

/**
 * --user NAME[:PASSWORD] and --password as etcdctl's authCfgFromCmd reads them: with --password the whole --user is
 * the name. clientv3 authenticates only when both name and password are non-empty.
 */
export function userCredentials(g: GlobalOptions): { user: string; password: string } | undefined {
  if (!g.user) return undefined;
  if (g.password) return { user: g.user, password: g.password };
  const i = g.user.indexOf(':');
  return i >= 0 ? { user: g.user.slice(0, i), password: g.user.slice(i + 1) } : { user: g.user, password: '' };
}

export function openClient(g: GlobalOptions, endpoints = g.endpoints): RemoteClient {
  const c = userCredentials(g);
  const credentials = c?.user && c.password ? c : undefined;
  const tls = g.cacert || g.cert || g.key || g.insecureSkipTlsVerify
    ? { ca: g.cacert, cert: g.cert, key: g.key, insecureSkipVerify: g.insecureSkipTlsVerify }
    : undefined;
  return createRemoteClient({
    endpoints,
    dialTimeoutMs: g.dialTimeoutMs,
    callTimeoutMs: g.commandTimeoutMs,
    credentials,
    tls,
  });
}

const GO_CODES = ['OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated'];
const warned = new WeakSet<object>();
/** The endpoint named in clientv3's retry warning. */
export const logTarget = { endpoint: '127.0.0.1:2379' };

/**
 * etcdctl prints a gRPC error by its description (`etcdserver: ...`, `context deadline exceeded`), after the
 * warning line clientv3's retry interceptor logs for every failed unary call; nestcdctl prints the same line.
 */
export function errorText(err: unknown): string {
  if (err instanceof ClientError) {
    if (!warned.has(err)) {
      warned.add(err);
      const desc = err.message === 'context deadline exceeded' ? 'latest balancer error: all SubConns are in TransientFailure' : err.message;
      const line = {
        level: 'warn',
        ts: new Date().toISOString(),
        caller: 'clientv3/retry_interceptor.go:62',
        msg: 'retrying of unary invoker failed',
        target: `endpoint://client-${randomUUID()}/${logTarget.endpoint.replace(/^\w+:\/\//, '')}`,
        attempt: 0,
        error: `rpc error: code = ${GO_CODES[err.code] ?? 'Unknown'} desc = ${desc}`,
      };
      process.stderr.write(`${JSON.stringify(line)}\n`);
    }
    // clientv3 turns only etcd's own errors into their bare text; anything else prints as the gRPC status.
    if (/^etcdserver: |^context (deadline exceeded|canceled)$/.test(err.message)) return err.message;
    return `rpc error: code = ${GO_CODES[err.code] ?? 'Unknown'} desc = ${err.message}`;
  }
  return (err as Error)?.message ?? String(err);
}

export const out = (s: string): void => {
  process.stdout.write(s);
};
export const errOut = (s: string): void => {
  process.stderr.write(s);
};
