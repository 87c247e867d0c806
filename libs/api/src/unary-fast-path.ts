/**
 * A lean server side for the hot unary methods (KV Range, Put, DeleteRange, Txn), ahead of grpc-js.
 *
 * Why: on a busy member grpc-js's per-call machinery (an intercepting call object with a dozen listeners, metadata
 * copies, a stream decoder, a response writable) and node:http2's own per-stream objects cost more CPU than the
 * store, Raft and WAL together. These calls carry one small message each way, so they are served straight from the
 * HTTP/2 frames (the front door's SplitConnection hands us their streams): read the framed request, run the same
 * handler chain grpc-js would run (metrics, learner guard, auth guard, handler), answer with grpc's message framing
 * and the headers and trailers etcd's grpc-go server sends. Everything else (streams, other services, compressed
 * requests, anything unusual) stays with grpc-js.
 */
import * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';
import type { HeaderField } from './front-door-hpack';
import type { SplitExchange, SplitStreamHandler, SplitStreamIo } from './front-door-split';

export interface FastUnaryMethod {
  deserialize(bytes: Buffer): unknown;
  serialize(value: unknown): Buffer;
  /** The handler as it would be registered with grpc-js (same wrappers, same callback contract). */
  handler: grpc.handleUnaryCall<unknown, unknown>;
}

/** grpc-js's grpc-timeout parsing (server-interceptors). */
const DEADLINE = /(\d{1,8})\s*([HMSmun])/;
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
const NGHTTP2_INTERNAL_ERROR = 2;

/** The part of grpc-js's ServerUnaryCall our handler chain uses. */
class FastUnaryCall {
  private meta?: grpc.Metadata;
  constructor(
    readonly request: unknown,
    private readonly io: SplitStreamIo,
  ) {}

  /** Built only when asked for (the auth guard reads the token): most calls never need it. */
  get metadata(): grpc.Metadata {
    if (!this.meta) {
      const md = grpc.Metadata.fromHttp2Headers(this.io.headers);
      for (const h of ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type']) md.remove(h);
      this.meta = md;
    }
    return this.meta;
  }

  getPeer(): string {
    return this.io.peer();
  }

  getPath(): string {
    return String(this.io.headers[':path']);
  }
}

export class UnaryFastPath implements SplitStreamHandler {
  constructor(
    private readonly methods: ReadonlyMap<string, FastUnaryMethod>,
    private readonly maxReceiveBytes: number,
    private readonly maxSendBytes: number,
  ) {}

  /** Serves the stream if it is a plain call of one of our methods; undefined leaves it to grpc-js. */
  open(io: SplitStreamIo): SplitExchange | undefined {
    const { headers } = io;
    const method = this.methods.get(headers[':path'] as string);
    if (!method || headers[':method'] !== 'POST') return undefined;
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return undefined;
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return undefined;
    const exchange = new FastUnaryExchange(this, io, method);
    exchange.start();
    return exchange;
  }

  get limits(): { receive: number; send: number } {
    return { receive: this.maxReceiveBytes, send: this.maxSendBytes };
  }
}

/** One call: read the request, run the handler, answer once (or not at all if the client went away). */
class FastUnaryExchange implements SplitExchange {
  private chunks: Buffer[] = [];
  private received = 0;
  private sizeChecked = false;
  private done = false;
  private deadline?: NodeJS.Timeout;

  constructor(
    private readonly path: UnaryFastPath,
    private readonly io: SplitStreamIo,
    private readonly method: FastUnaryMethod,
  ) {}

  start(): void {
    const timeout = this.io.headers['grpc-timeout'];
    if (timeout !== undefined) {
      const match = String(timeout).match(DEADLINE);
      if (!match) {
        this.fail(grpc.status.INTERNAL, `Invalid grpc-timeout value "${String(timeout)}"`);
        return;
      }
      const ms = (Number(match[1]) * UNIT_MS[match[2]]) | 0;
      this.deadline = setTimeout(() => this.fail(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), ms);
    }
  }

  /** The client reset the stream or the connection went: nothing can be answered. */
  aborted(): void {
    this.finish();
  }

  data(chunk: Buffer): void {
    if (this.done) return;
    this.received += chunk.length;
    this.chunks.push(chunk);
    // The length prefix is known as soon as 5 bytes are in: refuse an oversized message before buffering it.
    if (!this.sizeChecked && this.received >= 5) {
      this.sizeChecked = true;
      const head = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      this.chunks = [head];
      const size = head.readUInt32BE(1);
      const max = this.path.limits.receive;
      if (max !== -1 && size > max) this.fail(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${size} vs ${max})`);
    }
  }

  end(): void {
    if (this.done) return;
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    const where = String(this.io.headers[':path']);
    if (body.length < 5) {
      this.fail(grpc.status.UNIMPLEMENTED, `Received no request message for server streaming method ${where}`);
      return;
    }
    const size = body.readUInt32BE(1);
    if (body.length < 5 + size) {
      // a frame cut short by the end of the stream: grpc-js never delivers it either
      this.fail(grpc.status.UNIMPLEMENTED, `Received no request message for server streaming method ${where}`);
      return;
    }
    if (body.length > 5 + size) {
      this.fail(grpc.status.UNIMPLEMENTED, `Received a second request message for server streaming method ${where}`);
      return;
    }
    if (body[0] !== 0) {
      // compressed flag without a grpc-encoding: grpc-js refuses it as an unknown encoding
      this.fail(grpc.status.INTERNAL, 'Received compressed message but "grpc-encoding" header was identity');
      return;
    }
    let request: unknown;
    try {
      request = this.method.deserialize(body.subarray(5));
    } catch (err) {
      this.fail(grpc.status.INTERNAL, `Error deserializing request: ${(err as Error).message}`);
      return;
    }
    const call = new FastUnaryCall(request, this.io);
    try {
      this.method.handler(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (err, value) => this.respond(err, value));
    } catch {
      // grpc-js's answer to a throwing handler (its details only with GRPC_NODE_DEBUG_SEND_ERROR_DETAILS)
      this.fail(grpc.status.UNKNOWN, 'Unknown error');
    }
  }

  private respond(err: Partial<grpc.StatusObject> | null, value: unknown): void {
    if (this.done) return;
    if (err) {
      const code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
      const details = (err as { details?: string }).details ?? (err as Error).message ?? 'Unknown Error';
      this.fail(code, details, err.metadata);
      return;
    }
    let message: Buffer;
    try {
      message = this.method.serialize(value);
    } catch (e) {
      this.fail(grpc.status.INTERNAL, `Error serializing response: ${(e as Error).message}`);
      return;
    }
    const max = this.path.limits.send;
    if (max !== -1 && message.length > max) {
      this.fail(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${message.length + 5} vs. ${max})`);
      return;
    }
    this.finish();
    this.io.respond(message);
  }

  /** A trailers-only answer, as grpc-js sends a status before any message. */
  private fail(code: number, details: string, metadata?: grpc.Metadata | null): void {
    if (this.done) return;
    this.finish();
    const fields: HeaderField[] = [
      { name: 'grpc-status', value: String(code) },
      { name: 'grpc-message', value: encodeURI(details) },
    ];
    if (metadata) {
      try {
        for (const [name, value] of Object.entries(metadata.toHttp2Headers() as http2.OutgoingHttpHeaders)) {
          for (const v of Array.isArray(value) ? value : [value]) fields.push({ name, value: String(v) });
        }
      } catch {
        this.io.reset(NGHTTP2_INTERNAL_ERROR);
        return;
      }
    }
    this.io.respondTrailersOnly(fields);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
  }
}
