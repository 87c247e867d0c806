/**
 * A lean server side for the hot unary methods (KV Range, Put, DeleteRange, Txn), ahead of grpc-js.
 *
 * Why: on a busy member grpc-js's per-call machinery (an intercepting call object with a dozen listeners, metadata
 * copies, a stream decoder, a response writable) cost about as much CPU as the store, raft and WAL together. These
 * calls carry one small message each way, so they are served straight from the HTTP/2 stream: read the framed
 * request, run the same handler chain grpc-js would run (metrics, learner guard, auth guard, handler), answer with
 * grpc's message framing and the headers and trailers etcd's grpc-go server sends. Everything else (streams, other services, compressed requests,
 * anything unusual) stays with grpc-js.
 *
 * How: grpc-js builds the node:http2 server its connection injector feeds; `capture` wraps `http2.createServer`
 * while that happens, and the captured server's 'stream' events come here first.
 */
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';

export interface FastUnaryMethod {
  deserialize(bytes: Buffer): unknown;
  serialize(value: unknown): Buffer;
  /** The handler as it would be registered with grpc-js (same wrappers, same callback contract). */
  handler: grpc.handleUnaryCall<unknown, unknown>;
}

/** grpc-js's grpc-timeout parsing (server-interceptors). */
const DEADLINE = /(\d{1,8})\s*([HMSmun])/;
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

// What etcd's grpc-go server sends around an uncompressed answer: no encoding headers, no message with status 0.
const RESPONSE_HEADERS: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc' };
const OK_TRAILERS: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };

/** The part of grpc-js's ServerUnaryCall our handler chain uses. */
class FastUnaryCall {
  private meta?: grpc.Metadata;
  constructor(
    readonly request: unknown,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
  ) {}

  /** Built only when asked for (the auth guard reads the token): most calls never need it. */
  get metadata(): grpc.Metadata {
    if (!this.meta) {
      const md = grpc.Metadata.fromHttp2Headers(this.headers);
      for (const h of ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type']) md.remove(h);
      this.meta = md;
    }
    return this.meta;
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    if (!socket?.remoteAddress) return 'unknown';
    return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
  }

  getPath(): string {
    return String(this.headers[':path']);
  }
}

export class UnaryFastPath {
  constructor(
    private readonly methods: ReadonlyMap<string, FastUnaryMethod>,
    private readonly maxReceiveBytes: number,
    private readonly maxSendBytes: number,
  ) {}

  /** Runs `create` (which makes grpc-js build its HTTP/2 server) with that server's streams routed here first. */
  capture<T>(create: () => T): T {
    const original = { createServer: http2.createServer, createSecureServer: http2.createSecureServer };
    const route = <S extends http2.Http2Server | http2.Http2SecureServer>(server: S): S => {
      const emit = server.emit;
      server.emit = function (this: S, event: string | symbol, ...args: unknown[]): boolean {
        if (event === 'stream' && self.take(args[0] as http2.ServerHttp2Stream, args[1] as http2.IncomingHttpHeaders)) return true;
        return emit.call(this, event, ...args);
      } as S['emit'];
      return server;
    };
    const self = this;
    // The module object itself (an ES import of it is a read-only namespace copy): grpc-js calls through it.
    const mod = require('node:http2') as { createServer: unknown; createSecureServer: unknown };
    mod.createServer = (...args: unknown[]) => route((original.createServer as (...a: unknown[]) => http2.Http2Server)(...args));
    mod.createSecureServer = (...args: unknown[]) => route((original.createSecureServer as (...a: unknown[]) => http2.Http2SecureServer)(...args));
    try {
      return create();
    } finally {
      mod.createServer = original.createServer;
      mod.createSecureServer = original.createSecureServer;
    }
  }

  /** Serves the stream if it is a plain call of one of our methods; false leaves it to grpc-js. */
  take(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const method = this.methods.get(headers[':path'] as string);
    if (!method) return false;
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return false;
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return false;
    new FastUnaryExchange(this, stream, headers, method).start();
    return true;
  }

  get limits(): { receive: number; send: number } {
    return { receive: this.maxReceiveBytes, send: this.maxSendBytes };
  }
}

/** One call: read the request, run the handler, answer once (or not at all if the client went away). */
class FastUnaryExchange {
  private chunks: Buffer[] = [];
  private received = 0;
  private sizeChecked = false;
  private done = false;
  private deadline?: NodeJS.Timeout;

  constructor(
    private readonly path: UnaryFastPath,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly method: FastUnaryMethod,
  ) {}

  start(): void {
    const { stream } = this;
    // Nothing can be answered on a broken stream (grpc-js ignores these the same way); an answer to a stream the
    // client already closed is dropped in respond/fail, and a deadline timer left behind only finds it closed.
    stream.on('error', () => undefined);
    const timeout = this.headers['grpc-timeout'];
    if (timeout !== undefined) {
      const match = String(timeout).match(DEADLINE);
      if (!match) {
        this.fail(grpc.status.INTERNAL, `Invalid grpc-timeout value "${String(timeout)}"`);
        return;
      }
      const ms = (Number(match[1]) * UNIT_MS[match[2]]) | 0;
      this.deadline = setTimeout(() => this.fail(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), ms);
    }
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.once('end', () => this.onEnd());
  }

  private onData(chunk: Buffer): void {
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

  private onEnd(): void {
    if (this.done) return;
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    const where = String(this.headers[':path']);
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
    const call = new FastUnaryCall(request, this.stream, this.headers);
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
    const { stream } = this;
    if (stream.destroyed || stream.closed) return;
    const frame = Buffer.allocUnsafe(5 + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    this.write(() => {
      stream.respond({ ...RESPONSE_HEADERS }, { waitForTrailers: true });
      stream.once('wantTrailers', () => this.write(() => stream.sendTrailers({ ...OK_TRAILERS })));
      stream.end(frame);
    });
  }

  /** A trailers-only answer, as grpc-js sends a status before any message. */
  private fail(code: number, details: string, metadata?: grpc.Metadata | null): void {
    if (this.done) return;
    this.finish();
    const { stream } = this;
    if (stream.destroyed || stream.closed) return;
    this.write(() => {
      if (stream.headersSent) {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      stream.respond(
        { 'grpc-status': String(code), 'grpc-message': encodeURI(details), ...RESPONSE_HEADERS, ...(metadata ? metadata.toHttp2Headers() : {}) },
        { endStream: true },
      );
    });
  }

  /**
   * Stream calls that can throw if the client went away in between (or a message cannot be encoded): this runs in
   * the handler's callback, where a throw would escape as an unhandled rejection, so the stream is reset instead.
   */
  private write(fn: () => void): void {
    try {
      fn();
    } catch {
      if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
  }
}
