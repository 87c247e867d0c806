/**
 * The client-port front door: we own the listening sockets of the client URLs, look at what each
 * connection speaks, and hand gRPC (HTTP/2) connections to grpc-js through its connection injector.
 *
 * Why: grpc-go clients made from a raw endpoint string (etcdctl's `endpoint status`, `endpoint hashkv`,
 * `defrag`, `snapshot save`, `move-leader` ...) send `:authority: http://127.0.0.1:2379`. nghttp2, under
 * Node's http2, refuses that authority and resets the stream (RST_STREAM PROTOCOL_ERROR); Go's server
 * takes it. So:
 *
 *  - HTTP/2 whose first header block has an acceptable :authority and host: the raw socket goes to grpc-js
 *    with the bytes we read pushed back (`socket.unshift`), keeping Node's native fast path.
 *  - HTTP/2 with an unacceptable authority: the socket is wrapped in a RewritingSocket, which re-encodes
 *    every header block of the connection (H2RequestRewriter) with the authority repaired.
 *  - HTTP/1.x: `http1Handler` if given, else a plain 404.
 *  - anything else: closed.
 *
 * With a `streams` handler (GrpcServer passes its UnaryFastPath) every HTTP/2 connection instead becomes a
 * SplitConnection: the handler serves the streams it takes straight from the frames, and grpc-js gets the rest
 * (authority repaired the same way). That is the server's normal mode; the two above remain for a door without one.
 *
 * A grpc-go client sends no request before it has a server SETTINGS frame, so the front door sends one
 * (empty: all defaults) as soon as it sees the client preface, and removes the client's ACK of it.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Duplex } from 'node:stream';
import { EMPTY_SETTINGS, H2_PREFACE, H2PreambleAnalyzer, H2RequestRewriter, PreambleDecision } from './front-door-h2';
import { SocketStandIn, SplitConnection, SplitStreamHandler } from './front-door-split';

/**
 * Takes over an HTTP/1.x connection. `firstBytes` were already read from `socket` (which is paused, with no
 * listener of ours left): put them back with `socket.unshift(firstBytes)` before giving the socket to, e.g.,
 * `httpServer.emit('connection', socket)`. The handler owns the socket from then on.
 */
export type Http1Handler = (socket: net.Socket, firstBytes: Buffer) => void;

/** Where HTTP/2 connections go: grpc-js's `server.createConnectionInjector(credentials)`. */
export interface ConnectionSink {
  injectConnection(connection: Duplex): void;
}

export interface FrontDoorOptions {
  http1Handler?: Http1Handler;
  /** Problems of the front door itself (e.g. a listener error). */
  log?: (msg: string) => void;
  /** Per-connection notes: which connections get rewritten, client socket errors, unparseable streams. */
  trace?: (msg: string) => void;
  /** How long a new connection may take to show which protocol it speaks (default 10 s). */
  prefaceTimeoutMs?: number;
  /** How much an HTTP/2 connection may send before its first header block (default 256 KiB). */
  maxPreambleBytes?: number;
  /** Route every HTTP/2 connection through the rewriter (for tests and measurements). */
  alwaysRewrite?: boolean;
  /**
   * Streams served at the door: every HTTP/2 connection becomes a SplitConnection, whose streams this handler takes
   * go no further; the rest (and the connection's own frames) go on to the sink.
   */
  streams?: SplitStreamHandler;
}

export interface FrontDoorStats {
  fast: number;
  rewritten: number;
  split: number;
  /** client PINGs a split connection answered itself */
  pingsAnswered: number;
  http1: number;
  rejected: number;
}

const HTTP1_NOT_FOUND =
  'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nNot Found\n';

/**
 * 'yes' for the start of an HTTP/1.x request line (a method token and a space), 'maybe' if too short to
 * tell. PRI is HTTP/2's preface, never an HTTP/1 method (RFC 7540 §11.6).
 */
export function sniffHttp1(buf: Buffer): 'yes' | 'no' | 'maybe' {
  let i = 0;
  while (i < buf.length && i < 20 && buf[i] >= 0x41 && buf[i] <= 0x5a) i++; // A-Z
  if (i === buf.length) return i < 20 ? 'maybe' : 'no';
  if (i === 3 && buf.toString('latin1', 0, 3) === 'PRI') return 'no';
  return i >= 3 && buf[i] === 0x20 ? 'yes' : 'no';
}

/**
 * gRPC clients offer only h2; browsers and curl offer http/1.1 as well, and get it, so /health, /version and
 * /metrics (served by the HTTP/1 handler) answer them over TLS as they do in clear.
 */
function chooseAlpn({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes('http/1.1')) return 'http/1.1';
  return protocols.includes('h2') ? 'h2' : undefined;
}

export class FrontDoor {
  private readonly servers: net.Server[] = [];
  /** Sockets we still own: being classified, or answered with our own 404. */
  private readonly owned = new Set<net.Socket>();
  private closing = false;
  /** Verified client certificates' common names by `address:port` (what grpc-js's getPeer() gives). */
  private readonly peerNames = new Map<string, string>();
  readonly stats: FrontDoorStats = { fast: 0, rewritten: 0, split: 0, pingsAnswered: 0, http1: 0, rejected: 0 };

  constructor(private readonly sink: ConnectionSink, private readonly opts: FrontDoorOptions = {}) {}

  /**
   * Listens on host:port (0 picks a free port) and resolves with the bound port. With `tlsOptions` the
   * connection is decrypted first (ALPN h2 / http/1.1) and the plaintext goes through the same sniffing.
   */
  async listen(host: string, port: number, tlsOptions?: tls.TlsOptions): Promise<number> {
    const server = tlsOptions
      ? tls.createServer({ ...tlsOptions, ALPNCallback: chooseAlpn }, (socket) => this.acceptTls(socket))
      : net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    if (tlsOptions) server.on('tlsClientError', (err, socket) => {
      this.trace(`front door: TLS handshake with ${socket.remoteAddress}:${socket.remotePort} failed: ${err.message}`);
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log(`front door ${host}:${port}: ${err.message}`));
    this.servers.push(server);
    return (server.address() as net.AddressInfo).port;
  }

  /**
   * Stops accepting and closes the connections still in our hands. Connections already given to the
   * sink are the sink's to close; the returned promise resolves once those are gone too.
   */
  close(): Promise<void> {
    this.closing = true;
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.servers.length = 0;
    for (const socket of this.owned) socket.destroy();
    this.owned.clear();
    return closed.then(() => undefined);
  }

  /** Open connections on all listeners, whoever holds them now. */
  async connectionCount(): Promise<number> {
    const counts = await Promise.all(
      this.servers.map((s) => new Promise<number>((resolve) => s.getConnections((err, n) => resolve(err ? 0 : n)))),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /** The verified client certificate's common name of the connection `peer` (`address:port`), if any. */
  peerCommonName(peer: string): string | undefined {
    return this.peerNames.get(peer);
  }

  private acceptTls(socket: tls.TLSSocket): void {
    socket.setNoDelay(true);
    if (socket.authorized) {
      const cn = socket.getPeerCertificate()?.subject?.CN;
      const peer = `${socket.remoteAddress}:${socket.remotePort}`;
      if (typeof cn === 'string' && cn !== '') {
        this.peerNames.set(peer, cn);
        socket.once('close', () => this.peerNames.delete(peer));
      }
    }
    this.accept(socket);
  }

  /** Takes one accepted connection (exposed for tests). */
  accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.owned.add(socket);
    socket.on('error', (err) => this.trace(`front door: client ${socket.remoteAddress}:${socket.remotePort}: ${err.message}`));
    socket.once('close', () => this.owned.delete(socket));
    const fallbackAuthority = `${socket.localAddress?.includes(':') ? `[${socket.localAddress}]` : socket.localAddress}:${socket.localPort}`;

    let head: Buffer = Buffer.alloc(0);
    let analyzer: H2PreambleAnalyzer | undefined;
    const timer = setTimeout(() => {
      this.stats.rejected++;
      socket.destroy();
    }, this.opts.prefaceTimeoutMs ?? 10_000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));

    const release = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      this.owned.delete(socket);
    };

    const onData = (chunk: Buffer): void => {
      try {
        classify(chunk);
      } catch (err) {
        // a bug of ours must cost one connection, never the server
        this.log(`front door: dropping ${socket.remoteAddress}:${socket.remotePort}: ${(err as Error).stack ?? err}`);
        release();
        socket.destroy();
      }
    };
    const classify = (chunk: Buffer): void => {
      let decision: PreambleDecision;
      if (analyzer) {
        decision = analyzer.push(chunk);
      } else {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const n = Math.min(head.length, H2_PREFACE.length);
        if (head.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
          if (head.length < H2_PREFACE.length) return;
          clearTimeout(timer);
          socket.write(EMPTY_SETTINGS);
          if (this.opts.streams) {
            release();
            this.stats.split++;
            const split = new SplitConnection(socket, head, this.opts.streams, {
              fallbackAuthority,
              dropFirstSettingsAck: true,
              trace: (msg) => this.trace(msg),
              onPingAnswered: () => this.stats.pingsAnswered++,
            });
            this.sink.injectConnection(split);
            return;
          }
          analyzer = new H2PreambleAnalyzer((bytes) => socket.write(bytes), this.opts.maxPreambleBytes);
          decision = analyzer.push(head);
        } else {
          const http1 = sniffHttp1(head);
          if (http1 === 'maybe') return;
          release();
          if (http1 === 'yes') this.takeHttp1(socket, head);
          else {
            this.stats.rejected++;
            socket.destroy();
          }
          return;
        }
      }
      if (decision.kind === 'more') return;
      release();
      if (socket.destroyed || socket.readableEnded) {
        socket.destroy();
        return;
      }
      if (decision.kind === 'fast' && !this.opts.alwaysRewrite) {
        this.stats.fast++;
        socket.unshift(decision.buffered);
        this.sink.injectConnection(socket);
        return;
      }
      this.stats.rewritten++;
      const ackPending = decision.kind === 'rewrite' ? decision.ackPending : false;
      if (decision.kind === 'rewrite') {
        this.trace(`front door: rewriting header blocks from ${socket.remoteAddress}:${socket.remotePort} (${decision.reason})`);
      }
      const rewriter = new H2RequestRewriter({ fallbackAuthority, dropFirstSettingsAck: ackPending });
      this.sink.injectConnection(new RewritingSocket(socket, rewriter, decision.buffered, (msg) => this.trace(msg)));
    };
    socket.on('data', onData);
  }

  private takeHttp1(socket: net.Socket, firstBytes: Buffer): void {
    this.stats.http1++;
    if (this.opts.http1Handler) {
      this.opts.http1Handler(socket, firstBytes);
      return;
    }
    // Answer without waiting for the whole request; keep reading (and dropping) so that closing the socket
    // does not reset it under the client before it has read the answer.
    this.owned.add(socket);
    socket.on('data', () => undefined);
    socket.resume();
    socket.setTimeout(5000, () => socket.destroy());
    socket.end(HTTP1_NOT_FOUND);
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  private trace(msg: string): void {
    this.opts.trace?.(msg);
  }
}

/**
 * A socket seen through an H2RequestRewriter: what the client sends is rewritten on the way in, what the
 * server writes goes out untouched. Closing either side closes the other.
 */
export class RewritingSocket extends SocketStandIn {
  constructor(
    socket: net.Socket,
    private readonly rewriter: H2RequestRewriter,
    buffered: Buffer,
    private readonly log: (msg: string) => void = () => undefined,
  ) {
    super(socket);
    socket.on('data', (chunk: Buffer) => this.fromClient(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.pause();
    if (buffered.length > 0) this.fromClient(buffered);
  }

  private fromClient(chunk: Buffer): void {
    let out: Buffer[];
    try {
      out = this.rewriter.write(chunk);
    } catch (err) {
      this.log(`front door: closing ${this.socket.remoteAddress}:${this.socket.remotePort}: ${(err as Error).message}`);
      this.destroy();
      return;
    }
    let more = true;
    for (const b of out) more = this.push(b) && more;
    if (!more) this.socket.pause();
  }

  override _read(): void {
    if (!this.socket.destroyed) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb();
    else this.socket.once('drain', () => cb());
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.socket.cork();
    for (const { chunk } of chunks) this.socket.write(chunk);
    this.socket.uncork();
    if (!this.socket.writableNeedDrain) cb();
    else this.socket.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
