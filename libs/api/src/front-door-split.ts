/**
 * A client HTTP/2 connection split between two servers: streams a `SplitStreamHandler` takes (the hot unary KV
 * calls) are served here, straight from the frames; every other stream, and the connection's own frames (SETTINGS,
 * PING, GOAWAY), go on to node:http2 / grpc-js through this Duplex, which grpc-js sees as the client's socket.
 *
 * Why: node:http2 spends about as much CPU per unary call (a Duplex stream object, header objects, nghttp2
 * callbacks, several ticks) as the store, Raft and WAL together. A unary gRPC call is one header block and one
 * message each way, so serving it from the frames costs a fraction of that.
 *
 * What keeps the connection consistent for the client:
 *  - Header blocks: every client block is HPACK-decoded here (our decoder mirrors the client's encoder); the
 *    server's streams get theirs re-encoded statelessly (with :authority repaired as nghttp2 wants it). Our own
 *    answers use only static-table and literal-without-indexing representations, so the client's decoder table
 *    changes only with the server's blocks, which pass through untouched and in order.
 *  - Flow control, client to server: we credit what our streams receive (WINDOW_UPDATE, in 16 KiB steps); the
 *    server credits its own streams' bytes. Client to server credit therefore stays what the server expects.
 *  - Flow control, server to client: the client's connection window is shared. We track it (and the stream
 *    windows of our streams) and hold back any DATA frame, ours or the server's, that does not fit, in order.
 *  - GOAWAY from the server: its last-stream-id is raised to cover our streams, so a client never retries a call
 *    we served; new streams after it go to the server (which refuses them).
 *  - PING: the client's are answered here; ACKs of the server's keepalive PINGs go on to it.
 *  - Shutdown: when the server ends or destroys the connection, our calls in flight get up to a second to answer.
 */
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import type { Http2Server, IncomingHttpHeaders } from 'node:http2';
import {
  FRAME_HEADER_BYTES,
  FrameFlag,
  FrameType,
  H2_PREFACE,
  H2ProtocolError,
  DEFAULT_MAX_FRAME_SIZE,
  frameHeaderBlock,
  parseHeadersPayload,
} from './front-door-h2';
import { encodeStateless, HeaderField, HpackDecoder, HpackError, isValidAuthority, normalizeAuthority } from './front-door-hpack';

/** One stream served by the handler: its request headers, and the ways to answer it. */
export interface SplitStreamIo {
  /** The request headers (lower-case names; repeated fields joined with ', ', as node:http2 gives them). */
  readonly headers: IncomingHttpHeaders;
  /** Whether the stream is over (answered, reset by the client, or the connection is gone): answers are dropped. */
  readonly closed: boolean;
  /** `address:port` of the client. */
  peer(): string;
  /** Answers with status 200, `message` as the one gRPC message (uncompressed), and grpc-status 0. */
  respond(message: Buffer): void;
  /** A trailers-only answer: `fields` after `:status: 200` and `content-type: application/grpc`. */
  respondTrailersOnly(fields: readonly HeaderField[]): void;
  /** RST_STREAM with an HTTP/2 error code. */
  reset(code: number): void;
}

/** What the handler does with a stream it took: the request body as it arrives, its end, or the client's reset. */
export interface SplitExchange {
  data(chunk: Buffer): void;
  end(): void;
  aborted(): void;
}

export interface SplitStreamHandler {
  /** A new request stream: take it (return its exchange) or leave it to the server (undefined). */
  open(io: SplitStreamIo): SplitExchange | undefined;
}

export interface SplitOptions {
  /** Authority for header blocks whose :authority cannot be repaired (the listener's host:port). */
  fallbackAuthority: string;
  /** The client's first SETTINGS ACK answers the front door's own SETTINGS frame: the server must not see it. */
  dropFirstSettingsAck: boolean;
  trace?: (msg: string) => void;
  /** Called for each client PING answered at the door (stats). */
  onPingAnswered?: () => void;
}

const H2_ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, COMPRESSION_ERROR: 9 } as const;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const DEFAULT_WINDOW = 65535;
/** Credit the client in steps this big (a quarter of the default window, as grpc-go does). */
const CREDIT_STEP = 16 * 1024;
/**
 * The biggest frame a client may send: neither our SETTINGS nor node:http2's raise SETTINGS_MAX_FRAME_SIZE from its
 * 16 KiB default, so a bigger frame is a protocol error (and never makes us buffer megabytes).
 */
const MAX_INBOUND_FRAME = DEFAULT_MAX_FRAME_SIZE;
const MAX_HEADER_BLOCK_BYTES = 1024 * 1024;
/** Our closed streams remembered, so that late frames on them (WINDOW_UPDATE, RST_STREAM) are not sent on. */
const RECENT_STREAMS = 1024;
const SHUTDOWN_GRACE_MS = 1000;

const RESPONSE_BLOCK = encodeStateless([
  { name: ':status', value: '200' },
  { name: 'content-type', value: 'application/grpc' },
]);
const OK_TRAILERS_BLOCK = encodeStateless([{ name: 'grpc-status', value: '0' }]);

function writeFrameHeader(buf: Buffer, at: number, length: number, type: number, flags: number, stream: number): void {
  buf[at] = (length >>> 16) & 0xff;
  buf[at + 1] = (length >>> 8) & 0xff;
  buf[at + 2] = length & 0xff;
  buf[at + 3] = type;
  buf[at + 4] = flags;
  buf.writeUInt32BE(stream & 0x7fffffff, at + 5);
}

function controlFrame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(buf, 0, payload.length, type, flags, stream);
  payload.copy(buf, FRAME_HEADER_BYTES);
  return buf;
}

function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

/** Output held back: a whole frame (the server's, or a control frame of ours), or the rest of one of our answers. */
type Held =
  | { kind: 'frame'; bytes: Buffer; dataLength: number }
  | { kind: 'answer'; stream: OwnStream; message: Buffer; sent: number; trailers: Buffer };

class OwnStream implements SplitStreamIo {
  /** Answered or reset: later answers are dropped. */
  closed = false;
  /** The client ended its side (END_STREAM seen), or we ended the stream for it. */
  remoteEnded = false;
  /** The client reset the stream: what is held back for it is dropped. */
  resetByPeer = false;
  /** Part of the answer is held back (windows): the stream stays known until it has left. */
  sending = false;
  sendWindow: number;
  uncredited = 0;
  exchange?: SplitExchange;

  constructor(
    readonly id: number,
    readonly headers: IncomingHttpHeaders,
    private readonly conn: SplitConnection,
    initialWindow: number,
  ) {
    this.sendWindow = initialWindow;
  }

  peer(): string {
    return this.conn.peer();
  }

  respond(message: Buffer): void {
    if (!this.closed) this.conn.answer(this, message);
  }

  respondTrailersOnly(fields: readonly HeaderField[]): void {
    if (!this.closed) this.conn.answerTrailersOnly(this, fields);
  }

  reset(code: number): void {
    if (!this.closed) this.conn.resetOwn(this, code);
  }
}

/**
 * A Duplex standing in for a client socket in front of node:http2 (which wraps it in a JSStreamSocket): answers
 * what Http2Session and grpc-js ask a socket for with the real socket's values.
 */
export abstract class SocketStandIn extends Duplex {
  constructor(protected readonly socket: net.Socket) {
    super({ allowHalfOpen: false });
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  get remoteFamily(): string | undefined {
    return this.socket.remoteFamily;
  }
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.socket.setKeepAlive(enable, initialDelay);
    return this;
  }
  setTimeout(ms: number, callback?: () => void): this {
    this.socket.setTimeout(ms, callback);
    return this;
  }
  ref(): this {
    this.socket.ref();
    return this;
  }
  unref(): this {
    this.socket.unref();
    return this;
  }
}

export class SplitConnection extends SocketStandIn {
  private readonly decoder = new HpackDecoder();
  private prefaceLeft = H2_PREFACE.length;
  private pending?: Buffer; // an incomplete client frame
  private dropAck: boolean;
  // a client header block being collected
  private blockStream = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockEndStream = false;
  private blockPriority?: Buffer;

  private readonly own = new Map<number, OwnStream>();
  private readonly recent = new Set<number>();
  private readonly recentRing = new Array<number>(RECENT_STREAMS).fill(0);
  private recentNext = 0;
  /** Highest client stream id seen, and highest handed to the server. */
  private lastStream = 0;
  private serverMaxStream = 0;
  private lastOwnStream = 0;
  private connCredit = 0;

  // server -> client
  private connWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  private serverPartial?: Buffer;
  private serverBlockOpen = false; // the server sent HEADERS without END_HEADERS: nothing may go between
  private readonly held: Held[] = [];
  private readonly heldDuringBlock: Held[] = [];
  private out: Buffer[] = [];
  private writeScheduled = false;
  private goingAway = false; // the server sent GOAWAY
  private serverGone = false; // the server ended or destroyed its side
  private closeTimer?: NodeJS.Timeout;
  private closeAction?: () => void;
  private broken = false;

  constructor(
    socket: net.Socket,
    buffered: Buffer,
    private readonly handler: SplitStreamHandler,
    private readonly opts: SplitOptions,
  ) {
    super(socket);
    this.dropAck = opts.dropFirstSettingsAck;
    socket.on('data', (chunk: Buffer) => this.fromClient(chunk));
    socket.on('end', () => {
      if (!this.destroyed) this.push(null);
    });
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      this.abortOwn();
      this.destroy();
    });
    socket.pause();
    if (buffered.length > 0) this.fromClient(buffered);
  }

  peer(): string {
    const { remoteAddress, remotePort } = this.socket;
    if (!remoteAddress) return 'unknown';
    return remotePort ? `${remoteAddress}:${remotePort}` : remoteAddress;
  }

  // ----- client -> server --------------------------------------------------------------------------------------

  private fromClient(chunk: Buffer): void {
    if (this.broken) return;
    const toServer: Buffer[] = [];
    try {
      this.parseClient(chunk, toServer);
    } catch (err) {
      // A bug of ours must cost one connection, never the server.
      const known = err instanceof H2ProtocolError || err instanceof HpackError;
      this.trace(`front door: closing ${this.peer()}: ${known ? (err as Error).message : (err as Error).stack ?? err}`);
      const code = err instanceof HpackError ? H2_ERROR.COMPRESSION_ERROR : known ? H2_ERROR.PROTOCOL_ERROR : H2_ERROR.INTERNAL_ERROR;
      this.broken = true; // the client's stream can no longer be followed: read nothing more
      this.queueFrame(controlFrame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(this.lastStream), u32(code)])));
      this.flushNow();
      this.socket.end();
      this.destroy();
      return;
    }
    if (this.connCredit >= CREDIT_STEP) {
      this.queueFrame(controlFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(this.connCredit)));
      this.connCredit = 0;
    }
    let more = true;
    if (toServer.length > 0 && !this.destroyed) more = this.push(toServer.length === 1 ? toServer[0] : Buffer.concat(toServer));
    if (!more) this.socket.pause();
  }

  private parseClient(chunk: Buffer, toServer: Buffer[]): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let pos = 0;
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, buf.length);
      if (!buf.subarray(0, n).equals(H2_PREFACE.subarray(H2_PREFACE.length - this.prefaceLeft, H2_PREFACE.length - this.prefaceLeft + n))) {
        throw new H2ProtocolError('bad connection preface');
      }
      toServer.push(buf.subarray(0, n));
      this.prefaceLeft -= n;
      pos = n;
    }
    // Runs of frames that pass through unchanged are forwarded as one slice of the chunk.
    let passFrom = -1;
    const cut = (at: number) => {
      if (passFrom >= 0 && at > passFrom) toServer.push(buf.subarray(passFrom, at));
      passFrom = -1;
    };
    while (buf.length - pos >= FRAME_HEADER_BYTES) {
      const length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (length > MAX_INBOUND_FRAME) throw new H2ProtocolError(`frame of ${length} bytes`);
      if (buf.length - pos - FRAME_HEADER_BYTES < length) break;
      const type = buf[pos + 3];
      const flags = buf[pos + 4];
      const stream = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      const start = pos;
      const payload = buf.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + length);
      pos += FRAME_HEADER_BYTES + length;
      if (this.onClientFrame(type, flags, stream, payload, toServer, cut, start)) {
        if (passFrom < 0) passFrom = start;
      }
    }
    cut(pos);
    if (pos < buf.length) this.pending = Buffer.from(buf.subarray(pos));
  }

  /**
   * Handles one client frame; true if it goes to the server unchanged (the caller forwards it with its
   * neighbours). Frames it consumes or replaces first `cut` the pass-through run at `start`.
   */
  private onClientFrame(
    type: number,
    flags: number,
    stream: number,
    payload: Buffer,
    toServer: Buffer[],
    cut: (at: number) => void,
    start: number,
  ): boolean {
    if (this.blockStream !== 0 && (type !== FrameType.CONTINUATION || stream !== this.blockStream)) {
      throw new H2ProtocolError(`expected CONTINUATION on stream ${this.blockStream}, got frame type ${type} on ${stream}`);
    }
    switch (type) {
      case FrameType.HEADERS: {
        if (stream === 0) throw new H2ProtocolError('HEADERS on stream 0');
        cut(start);
        const { priority, fragment } = parseHeadersPayload(flags, payload);
        this.blockStream = stream;
        this.blockParts = [fragment];
        this.blockBytes = fragment.length;
        this.blockEndStream = (flags & FrameFlag.END_STREAM) !== 0;
        this.blockPriority = priority;
        if (flags & FrameFlag.END_HEADERS) this.endOfBlock(toServer);
        return false;
      }
      case FrameType.CONTINUATION: {
        if (this.blockStream === 0) throw new H2ProtocolError(`CONTINUATION on stream ${stream} outside a header block`);
        cut(start);
        this.blockParts.push(payload);
        this.blockBytes += payload.length;
        if (this.blockBytes > MAX_HEADER_BLOCK_BYTES) throw new H2ProtocolError(`header block over ${MAX_HEADER_BLOCK_BYTES} bytes`);
        if (flags & FrameFlag.END_HEADERS) this.endOfBlock(toServer);
        return false;
      }
      case FrameType.DATA: {
        const own = this.own.get(stream);
        if (!own && !this.isOursOrUnknown(stream)) return true;
        cut(start);
        // Flow control counts the whole payload, padding included, whoever the stream belongs to now.
        this.connCredit += payload.length;
        if (!own) return false;
        let body = payload;
        if (flags & FrameFlag.PADDED) {
          if (payload.length < 1 || payload[0] >= payload.length) throw new H2ProtocolError('DATA: bad padding');
          body = payload.subarray(1, payload.length - payload[0]);
        }
        const ended = (flags & FrameFlag.END_STREAM) !== 0;
        if (!ended) {
          own.uncredited += payload.length;
          if (own.uncredited >= CREDIT_STEP) {
            this.queueFrame(controlFrame(FrameType.WINDOW_UPDATE, 0, stream, u32(own.uncredited)));
            own.uncredited = 0;
          }
        }
        if (body.length > 0 && !own.remoteEnded && !own.closed) own.exchange?.data(body);
        if (ended) this.remoteEnd(own);
        return false;
      }
      case FrameType.RST_STREAM: {
        const own = this.own.get(stream);
        if (own) {
          cut(start);
          const wasClosed = own.closed;
          own.closed = true;
          own.resetByPeer = true;
          own.remoteEnded = true;
          own.sending = false;
          this.forget(own);
          if (!wasClosed) own.exchange?.aborted();
          return false;
        }
        if (this.isOursOrUnknown(stream)) {
          cut(start);
          return false;
        }
        return true;
      }
      case FrameType.WINDOW_UPDATE: {
        if (payload.length !== 4) return true; // the server answers the malformed frame
        const increment = payload.readUInt32BE(0) & 0x7fffffff;
        if (stream === 0) {
          this.connWindow += increment;
          this.releaseHeld();
          return true; // the server thinks the window is its own; held-back DATA keeps it honest
        }
        const own = this.own.get(stream);
        if (own) {
          cut(start);
          own.sendWindow += increment;
          this.releaseHeld();
          return false;
        }
        if (this.isOursOrUnknown(stream)) {
          cut(start);
          return false;
        }
        return true;
      }
      case FrameType.PRIORITY: {
        if (this.own.has(stream) || this.recent.has(stream)) {
          cut(start);
          return false;
        }
        return true;
      }
      case FrameType.SETTINGS: {
        if (flags & FrameFlag.ACK) {
          if (this.dropAck && payload.length === 0) {
            this.dropAck = false;
            cut(start);
            return false;
          }
          return true;
        }
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          const id = payload.readUInt16BE(i);
          const value = payload.readUInt32BE(i + 2);
          if (id === SETTINGS_INITIAL_WINDOW_SIZE && value <= 0x7fffffff) {
            const delta = value - this.peerInitialWindow;
            this.peerInitialWindow = value;
            for (const s of this.own.values()) s.sendWindow += delta;
            this.releaseHeld();
          } else if (id === SETTINGS_MAX_FRAME_SIZE && value >= DEFAULT_MAX_FRAME_SIZE && value <= 16 * 1024 * 1024 - 1) {
            this.peerMaxFrame = value;
          }
        }
        return true;
      }
      case FrameType.PING: {
        // The client's own PINGs are answered here (grpc-go clients send one per answer they receive, to estimate
        // bandwidth): a round trip through node:http2 costs more than the call. ACKs (answers to the server's
        // keepalive PINGs) and malformed PINGs go on to the server.
        if (flags & FrameFlag.ACK || stream !== 0 || payload.length !== 8) return true;
        cut(start);
        this.queueFrame(controlFrame(FrameType.PING, FrameFlag.ACK, 0, payload));
        this.opts.onPingAnswered?.();
        return false;
      }
      default:
        return true; // GOAWAY, PUSH_PROMISE (an error the server reports), extension frames
    }
  }

  /** A stream that is not the server's: one of ours now closed, or one nobody opened (above all the server has seen). */
  private isOursOrUnknown(stream: number): boolean {
    return stream !== 0 && (stream > this.serverMaxStream || this.recent.has(stream));
  }

  private endOfBlock(toServer: Buffer[]): void {
    const block = this.blockParts.length === 1 ? this.blockParts[0] : Buffer.concat(this.blockParts);
    const stream = this.blockStream;
    const endStream = this.blockEndStream;
    const priority = this.blockPriority;
    this.blockStream = 0;
    this.blockParts = [];
    this.blockBytes = 0;
    this.blockPriority = undefined;
    // Every block goes through the decoder, whoever gets the stream: it mirrors the client's encoder.
    const fields = this.decoder.decode(block);
    const own = this.own.get(stream);
    if (own) {
      // trailers from the client (gRPC clients send none): only the end of the stream matters
      if (endStream) this.remoteEnd(own);
      return;
    }
    if (this.recent.has(stream)) return;
    if (stream > this.lastStream) {
      this.lastStream = stream;
      if (!this.goingAway && !this.serverGone) {
        const s = new OwnStream(stream, headersObject(fields), this, this.peerInitialWindow);
        this.own.set(stream, s); // before open: the handler may answer at once
        const exchange = this.handler.open(s);
        if (exchange) {
          s.exchange = exchange;
          this.lastOwnStream = stream;
          if (endStream) this.remoteEnd(s);
          return;
        }
        this.own.delete(stream);
      } else if (this.serverGone) {
        this.queueFrame(controlFrame(FrameType.RST_STREAM, 0, stream, u32(H2_ERROR.REFUSED_STREAM)));
        return;
      }
    }
    this.serverMaxStream = Math.max(this.serverMaxStream, stream);
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if ((f.name === ':authority' || f.name === 'host') && !isValidAuthority(f.value)) {
        const fixed = normalizeAuthority(f.value, this.opts.fallbackAuthority);
        this.trace(`front door: ${this.peer()}: ${f.name} ${JSON.stringify(f.value)} -> ${JSON.stringify(fixed)}`);
        fields[i] = { ...f, value: fixed }; // decoded fields are shared with the decoder's table
      }
    }
    toServer.push(...frameHeaderBlock(stream, encodeStateless(fields), endStream, priority));
  }

  private remoteEnd(s: OwnStream): void {
    if (s.remoteEnded) return;
    s.remoteEnded = true;
    if (s.closed) {
      this.forget(s);
      return;
    }
    s.exchange?.end();
  }

  // ----- our answers -------------------------------------------------------------------------------------------

  /**
   * HEADERS, DATA (one gRPC message), trailers, and RST_STREAM NO_ERROR if the client has not finished sending (as
   * grpc-go does): one buffer when the windows allow, else held back in order.
   */
  answer(s: OwnStream, message: Buffer): void {
    s.closed = true;
    const id = s.id;
    const dataLength = 5 + message.length;
    const headersLength = FRAME_HEADER_BYTES + RESPONSE_BLOCK.length;
    const trailersLength = FRAME_HEADER_BYTES + OK_TRAILERS_BLOCK.length;
    const resetLength = s.remoteEnded ? 0 : FRAME_HEADER_BYTES + 4;
    if (this.canSendDirectly() && dataLength <= this.connWindow && dataLength <= s.sendWindow && dataLength <= this.peerMaxFrame) {
      const buf = Buffer.allocUnsafe(headersLength + FRAME_HEADER_BYTES + dataLength + trailersLength + resetLength);
      let at = 0;
      writeFrameHeader(buf, at, RESPONSE_BLOCK.length, FrameType.HEADERS, FrameFlag.END_HEADERS, id);
      RESPONSE_BLOCK.copy(buf, at + FRAME_HEADER_BYTES);
      at += headersLength;
      writeFrameHeader(buf, at, dataLength, FrameType.DATA, 0, id);
      buf[at + FRAME_HEADER_BYTES] = 0;
      buf.writeUInt32BE(message.length, at + FRAME_HEADER_BYTES + 1);
      message.copy(buf, at + FRAME_HEADER_BYTES + 5);
      at += FRAME_HEADER_BYTES + dataLength;
      writeFrameHeader(buf, at, OK_TRAILERS_BLOCK.length, FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, id);
      OK_TRAILERS_BLOCK.copy(buf, at + FRAME_HEADER_BYTES);
      at += trailersLength;
      if (resetLength > 0) {
        writeFrameHeader(buf, at, 4, FrameType.RST_STREAM, 0, id);
        buf.writeUInt32BE(H2_ERROR.NO_ERROR, at + FRAME_HEADER_BYTES);
      }
      this.connWindow -= dataLength;
      s.sendWindow -= dataLength;
      this.emit1(buf);
      this.ended(s);
      return;
    }
    const headers = Buffer.allocUnsafe(headersLength);
    writeFrameHeader(headers, 0, RESPONSE_BLOCK.length, FrameType.HEADERS, FrameFlag.END_HEADERS, id);
    RESPONSE_BLOCK.copy(headers, FRAME_HEADER_BYTES);
    const prefixed = Buffer.allocUnsafe(dataLength);
    prefixed[0] = 0;
    prefixed.writeUInt32BE(message.length, 1);
    message.copy(prefixed, 5);
    const tail = Buffer.allocUnsafe(trailersLength + resetLength);
    writeFrameHeader(tail, 0, OK_TRAILERS_BLOCK.length, FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, id);
    OK_TRAILERS_BLOCK.copy(tail, FRAME_HEADER_BYTES);
    if (resetLength > 0) {
      writeFrameHeader(tail, trailersLength, 4, FrameType.RST_STREAM, 0, id);
      tail.writeUInt32BE(H2_ERROR.NO_ERROR, trailersLength + FRAME_HEADER_BYTES);
    }
    s.sending = true;
    s.remoteEnded = true;
    this.hold({ kind: 'frame', bytes: headers, dataLength: 0 });
    this.hold({ kind: 'answer', stream: s, message: prefixed, sent: 0, trailers: tail });
    this.releaseHeld();
  }

  answerTrailersOnly(s: OwnStream, fields: readonly HeaderField[]): void {
    s.closed = true;
    const block = encodeStateless([{ name: ':status', value: '200' }, { name: 'content-type', value: 'application/grpc' }, ...fields]);
    const frames = frameHeaderBlock(s.id, block, true, undefined, this.peerMaxFrame);
    if (!s.remoteEnded) frames.push(controlFrame(FrameType.RST_STREAM, 0, s.id, u32(H2_ERROR.NO_ERROR)));
    this.queueFrame(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    this.ended(s);
  }

  resetOwn(s: OwnStream, code: number): void {
    s.closed = true;
    this.queueFrame(controlFrame(FrameType.RST_STREAM, 0, s.id, u32(code)));
    this.ended(s);
  }

  /** Our side of the stream is over (and the client's, or we reset it): it is no longer in flight. */
  private ended(s: OwnStream): void {
    s.remoteEnded = true;
    this.forget(s);
  }

  private forget(s: OwnStream): void {
    if (s.sending) return;
    if (!this.own.delete(s.id)) return;
    this.recent.delete(this.recentRing[this.recentNext]);
    this.recentRing[this.recentNext] = s.id;
    this.recentNext = (this.recentNext + 1) % RECENT_STREAMS;
    this.recent.add(s.id);
    if (this.own.size === 0 && this.closeAction) this.finishClose();
  }

  private abortOwn(): void {
    for (const s of [...this.own.values()]) {
      s.closed = true;
      this.own.delete(s.id);
      s.exchange?.aborted();
    }
  }

  // ----- server -> client --------------------------------------------------------------------------------------

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.fromServer(chunk);
    this.afterServerWrite(cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    for (const { chunk } of chunks) this.fromServer(chunk);
    this.afterServerWrite(cb);
  }

  private afterServerWrite(cb: (err?: Error | null) => void): void {
    this.flushNow();
    if (!this.socket.writableNeedDrain) cb();
    else this.socket.once('drain', () => cb());
  }

  /** Splits the server's bytes into frames: DATA must fit the shared window, GOAWAY must cover our streams. */
  private fromServer(chunk: Buffer): void {
    const buf = this.serverPartial ? Buffer.concat([this.serverPartial, chunk]) : chunk;
    this.serverPartial = undefined;
    let pos = 0;
    while (buf.length - pos >= FRAME_HEADER_BYTES) {
      const length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (buf.length - pos - FRAME_HEADER_BYTES < length) break;
      const type = buf[pos + 3];
      const flags = buf[pos + 4];
      let bytes = buf.subarray(pos, pos + FRAME_HEADER_BYTES + length);
      pos += FRAME_HEADER_BYTES + length;
      if (type === FrameType.GOAWAY && length >= 8) {
        this.goingAway = true;
        const last = bytes.readUInt32BE(FRAME_HEADER_BYTES) & 0x7fffffff;
        if (last < this.lastOwnStream) {
          bytes = Buffer.from(bytes);
          bytes.writeUInt32BE(this.lastOwnStream, FRAME_HEADER_BYTES);
        }
      }
      this.queueServerFrame(bytes, type === FrameType.DATA ? length : 0);
      if (type === FrameType.HEADERS || type === FrameType.PUSH_PROMISE) this.serverBlockOpen = (flags & FrameFlag.END_HEADERS) === 0;
      else if (type === FrameType.CONTINUATION && flags & FrameFlag.END_HEADERS) {
        this.serverBlockOpen = false;
        for (const h of this.heldDuringBlock.splice(0)) this.held.push(h);
        this.releaseHeld();
      }
    }
    if (pos < buf.length) this.serverPartial = Buffer.from(buf.subarray(pos));
  }

  private queueServerFrame(bytes: Buffer, dataLength: number): void {
    if (this.held.length === 0 && dataLength <= this.connWindow) {
      this.connWindow -= dataLength;
      this.out.push(bytes);
      return;
    }
    this.held.push({ kind: 'frame', bytes, dataLength });
  }

  /**
   * A frame of ours that carries no DATA (WINDOW_UPDATE, RST_STREAM, GOAWAY, a trailers-only answer): it may pass
   * DATA held back for other streams (no window holds it, and our header blocks leave the HPACK table alone), but
   * never split a header block of the server's.
   */
  private queueFrame(bytes: Buffer): void {
    if (this.serverBlockOpen) this.heldDuringBlock.push({ kind: 'frame', bytes, dataLength: 0 });
    else this.emit1(bytes);
  }

  private canSendDirectly(): boolean {
    return this.held.length === 0 && !this.serverBlockOpen;
  }

  private hold(h: Held): void {
    if (this.serverBlockOpen) this.heldDuringBlock.push(h);
    else this.held.push(h);
  }

  /** Sends what the windows now allow, in order. */
  private releaseHeld(): void {
    while (this.held.length > 0) {
      const h = this.held[0];
      if (h.kind === 'frame') {
        if (h.dataLength > this.connWindow) break;
        this.connWindow -= h.dataLength;
        this.out.push(h.bytes);
        this.held.shift();
        continue;
      }
      const s = h.stream;
      if (s.resetByPeer) {
        this.held.shift();
        continue;
      }
      const left = h.message.length - h.sent;
      const n = Math.min(left, this.connWindow, s.sendWindow, this.peerMaxFrame);
      if (n <= 0 && left > 0) break;
      if (n > 0) {
        const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
        writeFrameHeader(frame, 0, n, FrameType.DATA, 0, s.id);
        h.message.copy(frame, FRAME_HEADER_BYTES, h.sent, h.sent + n);
        h.sent += n;
        this.connWindow -= n;
        s.sendWindow -= n;
        this.out.push(frame);
      }
      if (h.sent === h.message.length) {
        this.out.push(h.trailers);
        this.held.shift();
        s.sending = false;
        this.forget(s);
      }
    }
    if (this.out.length > 0) this.scheduleWrite();
  }

  private emit1(bytes: Buffer): void {
    this.out.push(bytes);
    this.scheduleWrite();
  }

  /** Answers made in one turn of the event loop leave in one write. */
  private scheduleWrite(): void {
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    process.nextTick(() => this.flushNow());
  }

  private flushNow(): void {
    this.writeScheduled = false;
    if (this.out.length === 0) return;
    const bytes = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out);
    this.out = [];
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  // ----- lifetime ----------------------------------------------------------------------------------------------

  override _read(): void {
    if (!this.socket.destroyed) this.socket.resume();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.serverGone = true;
    this.whenOwnDone(() => {
      this.flushNow();
      this.socket.end();
    });
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.serverGone = true;
    this.whenOwnDone(() => {
      this.flushNow();
      this.socket.destroy();
    });
    cb(err);
  }

  /** Runs `action` once our streams in flight have answered, or after SHUTDOWN_GRACE_MS. */
  private whenOwnDone(action: () => void): void {
    if (this.own.size === 0 || this.socket.destroyed) {
      action();
      return;
    }
    const prev = this.closeAction;
    this.closeAction = () => {
      prev?.();
      action();
    };
    this.closeTimer ??= setTimeout(() => {
      this.abortOwn();
      this.finishClose();
    }, SHUTDOWN_GRACE_MS);
    this.closeTimer.unref?.();
  }

  private finishClose(): void {
    const action = this.closeAction;
    this.closeAction = undefined;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    // let the answers just made leave first
    process.nextTick(() => action?.());
  }

  private trace(msg: string): void {
    this.opts.trace?.(msg);
  }
}

/**
 * Runs `create` (which makes grpc-js build its node:http2 server) so that the sessions of that server learn their
 * client's address. grpc-js reads a call's peer (and so the client certificate's user) from the session's socket;
 * for a connection the front door wraps (SplitConnection, RewritingSocket) that is Node's JSStreamSocket, which has
 * no address of its own, but reports `_peername` when set (net.Socket's fallback for handles without getpeername).
 */
export function withPeerAddresses<T>(create: () => T): T {
  // The module object itself (an ES import of it is a read-only namespace copy): grpc-js calls through it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('node:http2') as Record<'createServer' | 'createSecureServer', (...args: unknown[]) => Http2Server>;
  const original = { createServer: mod.createServer, createSecureServer: mod.createSecureServer };
  const hook = (server: Http2Server): Http2Server =>
    server.on('session', (session) => {
      const socket = session.socket as unknown as { stream?: Partial<net.Socket>; _peername?: object };
      const wrapped = socket.stream; // a SplitConnection or a RewritingSocket: each tells its client's address
      if (wrapped?.remoteAddress) socket._peername = { address: wrapped.remoteAddress, port: wrapped.remotePort, family: wrapped.remoteFamily };
    });
  mod.createServer = (...args) => hook(original.createServer(...args));
  mod.createSecureServer = (...args) => hook(original.createSecureServer(...args));
  try {
    return create();
  } finally {
    mod.createServer = original.createServer;
    mod.createSecureServer = original.createSecureServer;
  }
}

/** Header fields as node:http2 gives them to a server: repeated names joined with ', ' (set-cookie as an array). */
function headersObject(fields: readonly HeaderField[]): IncomingHttpHeaders {
  const h: Record<string, string | string[]> = {};
  for (const { name, value } of fields) {
    const prev = h[name];
    if (prev === undefined) h[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else h[name] = `${prev}, ${value}`;
  }
  return h as IncomingHttpHeaders;
}
