/**
 * Small helpers for the crash-recovery tests (test/crash/*.test.ts): a seeded PRNG, grpc-js KV/Lease
 * clients with one HTTP/2 connection each, a promise wrapper with a deadline, and a kill -9 stop for a
 * ServerHandle from test/support (whose own stop() is graceful).
 */
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '@nestcd/api';
import { seededRandom } from '@nestcd/raft';
import type { ServerHandle } from '../support';

/** Seeded randomness for kill moments and operations: the same PRNG the Raft simulator uses. */
export const prng = (seed: number): (() => number) => seededRandom(seed);

export type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
export type RawClient = grpc.Client & Record<string, Unary>;

export interface Clients {
  kv: RawClient;
  lease: RawClient;
  close(): void;
}

/**
 * KV and Lease clients on their own channel (local subchannel pool: clients made by separate connect()
 * calls never share a connection, so N calls here are N concurrent HTTP/2 connections).
 */
export function connect(target: string): Clients {
  const pkg = loadEtcdProto().etcdserverpb;
  const options: grpc.ChannelOptions = {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 500,
  };
  const kv = new pkg.KV(target, grpc.credentials.createInsecure(), options) as unknown as RawClient;
  // the Lease client shares the KV client's channel
  const lease = new pkg.Lease(target, grpc.credentials.createInsecure(), { channelOverride: kv.getChannel() } as never) as unknown as RawClient;
  return {
    kv,
    lease,
    close() {
      lease.close();
      kv.close();
    },
  };
}

/** One unary call with a deadline; rejects with the grpc ServiceError (code, details). */
export function call<T>(client: RawClient, method: string, req: object, deadlineMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    client[method](req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res as T),
    );
  });
}

export function errText(err: unknown): string {
  const e = err as Partial<grpc.ServiceError>;
  if (e && typeof e.code === 'number') return `${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`;
  return String((err as Error)?.message ?? err);
}

function hasExited(h: ServerHandle): boolean {
  return h.process.exitCode !== null || h.process.signalCode !== null || !h.isRunning();
}

/** kill -9 the server and wait (bounded) until the OS reports it gone; then drop it from test/support's registry. */
export async function killHard(h: ServerHandle, timeoutMs = 10_000): Promise<void> {
  if (!hasExited(h)) {
    const exited = new Promise<void>((res) => h.process.once('exit', () => res()));
    h.process.kill('SIGKILL');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    if ((await Promise.race([exited, timer])) === 'timeout' && !hasExited(h)) {
      throw new Error(`server pid ${h.pid} did not exit ${timeoutMs} ms after SIGKILL`);
    }
  }
  await h.stop(0); // already dead: only unregisters it (the data dir is ours, stop() never removes it)
}

// Message shapes as @nestcd/api's proto loader decodes them (camelCase, int64 as decimal strings).
export interface Header {
  revision: string;
}
export interface KeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: string;
  modRevision: string;
  version: string;
  lease: string;
}
export interface RangeResponse {
  header: Header;
  kvs: KeyValue[];
  more: boolean;
  count: string;
}
export interface PutResponse {
  header: Header;
}
export interface DeleteRangeResponse {
  header: Header;
  deleted: string;
}
export interface TxnResponse {
  header: Header;
  succeeded: boolean;
}
export interface LeaseGrantResponse {
  header: Header;
  ID: string;
  TTL: string;
  error: string;
}
export interface LeaseTimeToLiveResponse {
  header: Header;
  ID: string;
  TTL: string;
  grantedTTL: string;
  keys: Buffer[];
}
