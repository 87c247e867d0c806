/**
 * HTTP/2 framing for the client-port front door (RFC 7540 §4, §6): the connection preface, a first-look
 * analyser of a fresh connection, and an incremental rewriter of the client->server byte stream that
 * re-encodes every header block with a valid :authority.
 */
import { encodeStateless, HeaderField, HpackDecoder, HpackError, isValidAuthority, normalizeAuthority } from './front-door-hpack';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value: what we may send the server without knowing its settings. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;

export enum FrameType {
  DATA = 0x0,
  HEADERS = 0x1,
  PRIORITY = 0x2,
  RST_STREAM = 0x3,
  SETTINGS = 0x4,
  PUSH_PROMISE = 0x5,
  PING = 0x6,
  GOAWAY = 0x7,
  WINDOW_UPDATE = 0x8,
  CONTINUATION = 0x9,
}

export enum FrameFlag {
  END_STREAM = 0x1,
  ACK = 0x1,
  END_HEADERS = 0x4,
  PADDED = 0x8,
  PRIORITY = 0x20,
}

/** A connection-level protocol violation that leaves the stream unparseable: the connection must go. */
export class H2ProtocolError extends Error {
  override readonly name = 'H2ProtocolError';
}

export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return h;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
}

/** An empty server SETTINGS frame: a valid server connection preface that changes no setting. */
export const EMPTY_SETTINGS = frame(FrameType.SETTINGS, 0, 0);

/** The parts of a HEADERS frame payload (RFC 7540 §6.2). */
export interface HeadersPayload {
  /** E bit + stream dependency + weight, if the PRIORITY flag was set. */
  priority?: Buffer;
  fragment: Buffer;
}

export function parseHeadersPayload(flags: number, payload: Buffer): HeadersPayload {
  let start = 0;
  let end = payload.length;
  if (flags & FrameFlag.PADDED) {
    if (payload.length < 1) throw new H2ProtocolError('HEADERS: PADDED without a pad length');
    const pad = payload[0];
    start = 1;
    end -= pad;
  }
  let priority: Buffer | undefined;
  if (flags & FrameFlag.PRIORITY) {
    if (start + 5 > end) throw new H2ProtocolError('HEADERS: too short for its priority fields');
    priority = payload.subarray(start, start + 5);
    start += 5;
  }
  if (end < start) throw new H2ProtocolError('HEADERS: padding longer than the payload');
  return priority ? { priority, fragment: payload.subarray(start, end) } : { fragment: payload.subarray(start, end) };
}

/**
 * Frames a header block as HEADERS + CONTINUATION*, no padding, each frame at most `maxFrameSize`.
 * `endStream` and `priority` go on the HEADERS frame, END_HEADERS on the last one.
 */
export function frameHeaderBlock(
  streamId: number,
  block: Buffer,
  endStream: boolean,
  priority?: Buffer,
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE,
): Buffer[] {
  const out: Buffer[] = [];
  const firstRoom = maxFrameSize - (priority ? priority.length : 0);
  const first = block.subarray(0, firstRoom);
  let flags = (endStream ? FrameFlag.END_STREAM : 0) | (priority ? FrameFlag.PRIORITY : 0);
  if (first.length === block.length) flags |= FrameFlag.END_HEADERS;
  out.push(frameHeader(first.length + (priority ? priority.length : 0), FrameType.HEADERS, flags, streamId));
  if (priority) out.push(priority);
  out.push(first);
  for (let pos = first.length; pos < block.length; pos += maxFrameSize) {
    const part = block.subarray(pos, pos + maxFrameSize);
    const last = pos + part.length === block.length;
    out.push(frameHeader(part.length, FrameType.CONTINUATION, last ? FrameFlag.END_HEADERS : 0, streamId), part);
  }
  return out;
}

/** Whether nghttp2 would accept this request's :authority and host. */
export function authorityIsAcceptable(fields: readonly HeaderField[]): boolean {
  for (const f of fields) {
    if ((f.name === ':authority' || f.name === 'host') && !isValidAuthority(f.value)) return false;
  }
  return true;
}

export interface RewriterOptions {
  /** Authority used when the client's cannot be repaired (e.g. `unix:///path`): the listener's host:port. */
  fallbackAuthority: string;
  /**
   * Drop the client's first SETTINGS ACK: the front door sent the client an extra SETTINGS frame of its own
   * before handing the connection over, and the server must not see an ACK for a SETTINGS it never sent.
   */
  dropFirstSettingsAck?: boolean;
  /** The largest header block (compressed, all fragments) accepted; a bigger one is a protocol error. */
  maxHeaderBlockBytes?: number;
  /** Called for each header field value that had to be rewritten. */
  onRewrite?: (name: string, from: string, to: string) => void;
}

enum RwState {
  PREFACE,
  HEADER,
  PASS,
  COLLECT,
}

/**
 * The client->server half of a rewritten connection, fed chunk by chunk as bytes arrive. Every frame
 * passes through byte for byte except: header blocks (HEADERS + CONTINUATION) are HPACK-decoded with a
 * decoder that mirrors the client's encoder, and re-encoded statelessly, unpadded, with :authority and
 * host repaired; and optionally the first SETTINGS ACK is dropped. Once a connection is rewritten every
 * later header block must be too: the server's HPACK decoder only ever sees the stateless encoding.
 */
export class H2RequestRewriter {
  private readonly decoder = new HpackDecoder();
  private readonly maxHeaderBlockBytes: number;
  private dropAck: boolean;
  private state = RwState.PREFACE;
  private prefaceLeft = H2_PREFACE.length;
  private readonly headerBuf = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerHave = 0;
  private payloadLeft = 0;
  // the frame being collected (HEADERS or CONTINUATION) and the header block it belongs to
  private frameType = 0;
  private frameFlags = 0;
  private frameStream = 0;
  private frameParts: Buffer[] = [];
  private blockStream = 0; // non-zero while a header block awaits CONTINUATION frames
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockEndStream = false;
  private blockPriority: Buffer | undefined;
  /** header blocks re-encoded so far */
  blocks = 0;

  constructor(private readonly opts: RewriterOptions) {
    this.dropAck = !!opts.dropFirstSettingsAck;
    this.maxHeaderBlockBytes = opts.maxHeaderBlockBytes ?? 1024 * 1024;
  }

  /**
   * Consumes the next client bytes and returns what to send the server instead (in order; possibly
   * nothing, possibly `chunk` itself when nothing in it changed). Throws H2ProtocolError or HpackError
   * when the stream can no longer be followed: the connection must then be closed.
   */
  write(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let changed = false; // whether out differs from chunk
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.state) {
        case RwState.PREFACE: {
          const n = Math.min(this.prefaceLeft, chunk.length - pos);
          out.push(chunk.subarray(pos, pos + n));
          pos += n;
          this.prefaceLeft -= n;
          if (this.prefaceLeft === 0) this.state = RwState.HEADER;
          break;
        }
        case RwState.HEADER: {
          const n = Math.min(FRAME_HEADER_BYTES - this.headerHave, chunk.length - pos);
          const headerStart = pos;
          chunk.copy(this.headerBuf, this.headerHave, pos, pos + n);
          this.headerHave += n;
          pos += n;
          if (this.headerHave < FRAME_HEADER_BYTES) {
            changed = true; // held back until the header is complete
            break;
          }
          this.headerHave = 0;
          const h = this.headerBuf;
          const length = h.readUIntBE(0, 3);
          const type = h[3];
          const flags = h[4];
          const stream = h.readUInt32BE(5) & 0x7fffffff;
          const wholeHeaderInChunk = n === FRAME_HEADER_BYTES;
          if (this.blockStream !== 0 && (type !== FrameType.CONTINUATION || stream !== this.blockStream)) {
            throw new H2ProtocolError(`expected CONTINUATION on stream ${this.blockStream}, got frame type ${type} on ${stream}`);
          }
          if (type === FrameType.HEADERS || type === FrameType.CONTINUATION) {
            if (type === FrameType.CONTINUATION && this.blockStream === 0) {
              throw new H2ProtocolError(`CONTINUATION on stream ${stream} outside a header block`);
            }
            if (stream === 0) throw new H2ProtocolError('header block on stream 0');
            this.frameType = type;
            this.frameFlags = flags;
            this.frameStream = stream;
            this.frameParts = [];
            this.payloadLeft = length;
            this.state = RwState.COLLECT;
            changed = true;
            if (length === 0) this.endOfCollectedFrame(out);
            break;
          }
          if (type === FrameType.SETTINGS && flags & FrameFlag.ACK && this.dropAck && length === 0) {
            this.dropAck = false;
            changed = true;
            break;
          }
          out.push(wholeHeaderInChunk ? chunk.subarray(headerStart, pos) : Buffer.from(h));
          if (!wholeHeaderInChunk) changed = true;
          this.payloadLeft = length;
          if (length > 0) this.state = RwState.PASS;
          break;
        }
        case RwState.PASS: {
          const n = Math.min(this.payloadLeft, chunk.length - pos);
          out.push(chunk.subarray(pos, pos + n));
          pos += n;
          this.payloadLeft -= n;
          if (this.payloadLeft === 0) this.state = RwState.HEADER;
          break;
        }
        case RwState.COLLECT: {
          changed = true;
          const n = Math.min(this.payloadLeft, chunk.length - pos);
          this.frameParts.push(chunk.subarray(pos, pos + n));
          pos += n;
          this.payloadLeft -= n;
          this.blockBytes += n;
          if (this.blockBytes > this.maxHeaderBlockBytes) {
            throw new H2ProtocolError(`header block over ${this.maxHeaderBlockBytes} bytes`);
          }
          if (this.payloadLeft === 0) this.endOfCollectedFrame(out);
          break;
        }
      }
    }
    if (!changed) return [chunk];
    return out.length <= 1 ? out : [Buffer.concat(out)];
  }

  private endOfCollectedFrame(out: Buffer[]): void {
    this.state = RwState.HEADER;
    const payload = this.frameParts.length === 1 ? this.frameParts[0] : Buffer.concat(this.frameParts);
    this.frameParts = [];
    if (this.frameType === FrameType.HEADERS) {
      const { priority, fragment } = parseHeadersPayload(this.frameFlags, payload);
      this.blockStream = this.frameStream;
      this.blockEndStream = (this.frameFlags & FrameFlag.END_STREAM) !== 0;
      this.blockPriority = priority;
      this.blockParts = [fragment];
    } else {
      this.blockParts.push(payload);
    }
    if (this.frameFlags & FrameFlag.END_HEADERS) this.endOfBlock(out);
  }

  private endOfBlock(out: Buffer[]): void {
    const block = this.blockParts.length === 1 ? this.blockParts[0] : Buffer.concat(this.blockParts);
    const stream = this.blockStream;
    this.blockStream = 0;
    this.blockParts = [];
    this.blockBytes = 0;
    const fields = this.decoder.decode(block);
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (f.name === ':authority' || f.name === 'host') {
        if (!isValidAuthority(f.value)) {
          const fixed = normalizeAuthority(f.value, this.opts.fallbackAuthority);
          this.opts.onRewrite?.(f.name, f.value, fixed);
          fields[i] = { ...f, value: fixed }; // decoded fields are shared with the decoder's table
        }
      }
    }
    out.push(...frameHeaderBlock(stream, encodeStateless(fields), this.blockEndStream, this.blockPriority));
    this.blocks++;
  }
}

export type PreambleDecision =
  /** Still reading: the first header block (or, for `fast`, the ACK of our SETTINGS) has not arrived. */
  | { kind: 'more' }
  /** Hand the socket to the server untouched, with `buffered` pushed back in front of it. */
  | { kind: 'fast'; buffered: Buffer }
  /** Route the connection through an H2RequestRewriter, fed `buffered` first. */
  | { kind: 'rewrite'; buffered: Buffer; ackPending: boolean; reason: string };

/**
 * Looks at the start of a connection whose 24-byte preface has been seen, up to its first complete header
 * block, to decide whether the server can take it as is. Meanwhile it answers the client's PINGs itself
 * (they are removed from what the server will see), and removes the client's ACK of the SETTINGS frame the
 * front door sent (see EMPTY_SETTINGS: grpc-go sends no request until it has seen a server SETTINGS).
 */
export class H2PreambleAnalyzer {
  private acc: Buffer = Buffer.alloc(0);
  private pos = H2_PREFACE.length; // first unparsed byte of acc
  private readonly kept: Buffer[] = [];
  private keptFrom = 0; // acc[keptFrom..pos) is kept but not yet in `kept`
  private ackSeen = false;
  private blockStream = 0;
  private blockParts: Buffer[] = [];
  private verdict: 'valid' | 'invalid' | 'unknown' = 'unknown';
  private reason = '';

  constructor(
    /** Sends bytes to the client (PING ACKs); only called while the analyser still owns the connection. */
    private readonly reply: (bytes: Buffer) => void,
    private readonly maxBytes = 256 * 1024,
  ) {}

  /** Feeds the connection's bytes so far, preface included; call again with each new chunk. */
  push(chunk: Buffer): PreambleDecision {
    this.acc = this.acc.length === 0 ? chunk : Buffer.concat([this.acc, chunk]);
    while (this.acc.length - this.pos >= FRAME_HEADER_BYTES) {
      const length = this.acc.readUIntBE(this.pos, 3);
      if (this.acc.length - this.pos - FRAME_HEADER_BYTES < length) break;
      const type = this.acc[this.pos + 3];
      const flags = this.acc[this.pos + 4];
      const stream = this.acc.readUInt32BE(this.pos + 5) & 0x7fffffff;
      const start = this.pos;
      const payload = this.acc.subarray(start + FRAME_HEADER_BYTES, start + FRAME_HEADER_BYTES + length);
      this.pos = start + FRAME_HEADER_BYTES + length;
      if (type === FrameType.PING && !(flags & FrameFlag.ACK) && stream === 0 && length === 8) {
        this.drop(start);
        this.reply(frame(FrameType.PING, FrameFlag.ACK, 0, Buffer.from(payload)));
      } else if (type === FrameType.SETTINGS && flags & FrameFlag.ACK && length === 0 && !this.ackSeen) {
        this.drop(start);
        this.ackSeen = true;
      } else if (this.verdict === 'unknown') {
        this.lookAtHeaderBlock(type, flags, stream, payload);
      }
      if (this.verdict === 'invalid') return this.decide('rewrite');
      if (this.verdict === 'valid' && this.ackSeen) return this.decide('fast');
    }
    if (this.acc.length > this.maxBytes) {
      this.reason = this.verdict === 'valid' ? 'no SETTINGS ACK' : 'no complete header block';
      return this.decide('rewrite');
    }
    return { kind: 'more' };
  }

  private lookAtHeaderBlock(type: number, flags: number, stream: number, payload: Buffer): void {
    try {
      if (type === FrameType.HEADERS) {
        this.blockStream = stream;
        this.blockParts = [parseHeadersPayload(flags, payload).fragment];
      } else if (type === FrameType.CONTINUATION && this.blockStream === stream && stream !== 0) {
        this.blockParts.push(payload);
      } else {
        return;
      }
      if (!(flags & FrameFlag.END_HEADERS)) return;
      const fields = new HpackDecoder().decode(Buffer.concat(this.blockParts));
      if (authorityIsAcceptable(fields)) {
        this.verdict = 'valid';
      } else {
        this.verdict = 'invalid';
        const bad = fields.find((f) => (f.name === ':authority' || f.name === 'host') && !isValidAuthority(f.value));
        this.reason = `${bad?.name} ${JSON.stringify(bad?.value)}`;
      }
    } catch (err) {
      if (!(err instanceof H2ProtocolError || err instanceof HpackError)) throw err;
      // Not ours to judge: the server will answer the malformed block with the right GOAWAY.
      this.verdict = 'valid';
      this.ackSeen = true;
    }
  }

  private drop(frameStart: number): void {
    if (frameStart > this.keptFrom) this.kept.push(this.acc.subarray(this.keptFrom, frameStart));
    this.keptFrom = this.pos;
  }

  private decide(kind: 'fast' | 'rewrite'): PreambleDecision {
    if (this.acc.length > this.keptFrom) this.kept.push(this.acc.subarray(this.keptFrom));
    const buffered = this.kept.length === 1 ? this.kept[0] : Buffer.concat(this.kept);
    return kind === 'fast'
      ? { kind, buffered }
      : { kind, buffered, ackPending: !this.ackSeen, reason: this.reason };
  }
}
