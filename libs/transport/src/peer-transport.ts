import * as net from 'node:net';
import * as tls from 'node:tls';
import { constants as bufferConstants } from 'node:buffer';
import { crc32 } from 'node:zlib';
import { Message, MessageType } from '@nestcd/raft';
import { CodecError, encodedMessageSize, encodeMessage } from './codec';
import {
  decodeHello, decodeHelloOk, decodeMsgsBody, decodeReject, decodeSnapBegin, decodeSnapResult, encodeHello,
  encodeHelloOk, encodeMsgsFrame, encodeReject, encodeSnapBegin, encodeSnapResult, Frame, FrameDecoder, frame,
  frameHeader, FrameKind, PROTOCOL_VERSION, RejectCode, StreamKind,
} from './frames';

/** A test-only fault switch: links can be cut without touching the network. */
export interface TransportFaults {
  /** Called for every outbound message; true drops it silently (as a lossy network would). */
  drop?: (to: bigint, msg: Message) => boolean;
  /** Peers this member cannot talk to: outbound messages to them and inbound messages from them vanish. */
  partitioned?: Set<bigint>;
}

export interface PeerTransportOptions {
  memberId: bigint;
  clusterId: bigint;
  /** --listen-peer-urls: `http://host:port` (port 0 picks a free port; see `start()`). */
  listenUrls: string[];
  log?: (line: string) => void;
  /**
   * Every message received from a peer, in the order each peer sent it. Called synchronously from socket
   * callbacks; a returned promise is awaited only for MsgSnap (the sender learns the snapshot was delivered
   * once it settles).
   */
  onMessage: (msg: Message) => void | Promise<void>;
  /** A message to the peer was lost (send queue full, connection failed): raft's `reportUnreachable`. */
  onUnreachable?: (peerId: bigint) => void;
  /** Outcome of a MsgSnap: raft's `reportSnapshot(peer, ok ? Finish : Failure)`. */
  onSnapshotStatus?: (peerId: bigint, ok: boolean) => void;
  /**
   * TLS for https:// peer URLs (see @nestcd/auth's serverOptions/clientOptions): listeners take `server`
   * (with peer client cert auth a member without a certificate the CA signed fails the handshake), dialers `client`.
   */
  tls?: { server: tls.TlsOptions; client: tls.ConnectionOptions };
  /** Refuse inbound connections from some members (e.g. removed ones): return the reason, or undefined. */
  acceptPeer?: (peerId: bigint) => string | undefined;
  /** A peer refused our connection (removed member, cluster ID mismatch...): its reason. */
  onRefused?: (peerId: bigint, reason: string) => void;
  /** Answers cluster-info streams (see fetchClusterInfo); without it they are refused. */
  clusterInfo?: () => Buffer;
  /** Per-peer send queue bound, in messages (default 4096, etcd's stream buffer). */
  maxQueuedMessages?: number;
  /** Per-peer send queue bound, in encoded bytes (default 64 MiB). */
  maxQueuedBytes?: number;
  /** Queued messages are coalesced into frames of up to this many bytes (default 1 MiB; a larger message goes alone). */
  maxBatchBytes?: number;
  /** Largest message frame accepted or sent (default 256 MiB). */
  maxFrameBytes?: number;
  /** Snapshot data is streamed in chunks of this size (default 1 MiB). */
  snapshotChunkBytes?: number;
  /** Largest snapshot accepted (default: the largest Buffer, 4 GiB). */
  maxSnapshotBytes?: number;
  /** Reconnect backoff: first delay, doubled per failure up to the max (defaults 50 ms .. 2 s). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Connect plus handshake must finish within this (default 5 s). */
  dialTimeoutMs?: number;
  /** A snapshot stream with no progress for this long fails (default 30 s). */
  snapshotIdleTimeoutMs?: number;
  /** onUnreachable is reported at most once per peer per interval (default 100 ms). */
  unreachableIntervalMs?: number;
}

export interface PeerStats {
  peerId: bigint;
  urls: string[];
  connected: boolean;
  queued: number;
  /** Messages written to the connection. */
  sent: number;
  /** Frames (socket writes) those messages went out in. */
  batches: number;
  bytesSent: number;
  /** Messages lost: queue full, connection down or failed, or unencodable. */
  dropped: number;
  /** Messages dropped by the test fault switch. */
  faultDropped: number;
  /** Successful connections after the first. */
  reconnects: number;
  snapshotsSent: number;
  snapshotsFailed: number;
}

export interface TransportStats {
  received: number;
  /** Messages to members this transport does not know. */
  unknownPeerDropped: number;
  /** Inbound messages dropped by the fault switch. */
  faultDroppedInbound: number;
  dropped: number;
  peers: PeerStats[];
}

interface HostPort {
  host: string;
  port: number;
  url: string;
  secure: boolean;
}

const HANDSHAKE_MAX_FRAME = 4096;
const SNAPSHOT_CONTROL_MAX_FRAME = 64 * 1024 * 1024;

const hex = (id: bigint): string => id.toString(16);

/** Parses `http://host:port` (etcd peer URL syntax). */
export function parsePeerUrl(u: string): HostPort {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new Error(`invalid peer URL ${JSON.stringify(u)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`peer URL ${u}: scheme must be http or https`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const secure = url.protocol === 'https:';
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  return { host, port, url: u, secure };
}

class HandshakeError extends Error {
  constructor(message: string, readonly refused: boolean) {
    super(message);
  }
}

/**
 * Dials `hp`, sends HELLO and waits for the answer. `onSocket` receives the socket at once (so a caller can
 * destroy it to abort). Resolves with the socket and its frame decoder, all handshake listeners removed.
 */
function openStream(
  hp: HostPort, hello: Buffer, expect: { clusterId: bigint; memberId: bigint }, timeoutMs: number,
  onSocket: (s: net.Socket) => void, tlsClient?: tls.ConnectionOptions,
): Promise<{ socket: net.Socket; decoder: FrameDecoder; rest: Frame[] }> {
  return new Promise((resolve, reject) => {
    if (hp.secure && !tlsClient) {
      reject(new HandshakeError(`peer URL ${hp.url} is https but this member has no peer TLS (--peer-cert-file/--peer-key-file or --peer-auto-tls)`, true));
      return;
    }
    // With TLS the hello goes out once the handshake is done ('secureConnect'), so a refused certificate is an error, not a reply.
    const socket = hp.secure ? tls.connect({ ...tlsClient, host: hp.host, port: hp.port }) : net.connect({ host: hp.host, port: hp.port });
    const connectEvent = hp.secure ? 'secureConnect' : 'connect';
    socket.setNoDelay(true);
    onSocket(socket);
    const decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME);
    let settled = false;
    const finish = (err?: Error, rest: Frame[] = []): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off(connectEvent, onConnect);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err) {
        socket.on('error', () => {});
        socket.destroy();
        reject(err);
      } else {
        resolve({ socket, decoder, rest });
      }
    };
    const timer = setTimeout(() => finish(new HandshakeError(`no handshake within ${timeoutMs} ms`, false)), timeoutMs);
    const onConnect = (): void => {
      socket.write(hello);
    };
    const onData = (chunk: Buffer): void => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        finish(new HandshakeError(`bad handshake reply: ${(e as Error).message}`, false));
        return;
      }
      if (frames.length === 0) return;
      const f = frames[0];
      if (f.kind === FrameKind.HelloReject) {
        const { reason } = decodeReject(f.body);
        finish(new HandshakeError(reason, true));
      } else if (f.kind === FrameKind.HelloOk) {
        try {
          const ok = decodeHelloOk(f.body);
          if (ok.clusterId !== expect.clusterId) {
            finish(new HandshakeError(`cluster ID mismatch: local ${hex(expect.clusterId)}, remote ${hex(ok.clusterId)}`, true));
          } else if (expect.memberId !== 0n && ok.memberId !== expect.memberId) {
            finish(new HandshakeError(`member ID mismatch: expected ${hex(expect.memberId)}, remote is ${hex(ok.memberId)}`, true));
          } else {
            finish(undefined, frames.slice(1));
          }
        } catch (e) {
          finish(new HandshakeError(`bad handshake reply: ${(e as Error).message}`, false));
        }
      } else {
        finish(new HandshakeError(`unexpected frame kind ${f.kind} during handshake`, false));
      }
    };
    const onError = (err: Error): void => finish(new HandshakeError(err.message, false));
    const onClose = (): void => finish(new HandshakeError('connection closed during handshake', false));
    socket.on(connectEvent, onConnect);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

type LinkState = 'connecting' | 'connected' | 'backoff' | 'closed';

/** One remote member: its outbound message connection, bounded send queue and snapshot sender. */
class PeerLink {
  urls: HostPort[];
  state: LinkState = 'backoff';
  private urlIndex = 0;
  private socket?: net.Socket;
  private queue: Message[] = [];
  private sizes: number[] = [];
  private head = 0;
  private queuedBytes = 0;
  private waitingDrain = false;
  private flushScheduled = false;
  private backoffMs: number;
  private timer?: NodeJS.Timeout;
  private everConnected = false;
  private active = false;
  /** When the current connection became active (etcd's ActiveSince); undefined while down. */
  activeSince?: number;
  private lastFailure = '';
  private lastUnreachable = -Infinity;
  private snapSocket?: net.Socket;
  private snapInFlight = false;
  readonly stats: Omit<PeerStats, 'peerId' | 'urls' | 'connected' | 'queued'> = {
    sent: 0, batches: 0, bytesSent: 0, dropped: 0, faultDropped: 0, reconnects: 0, snapshotsSent: 0, snapshotsFailed: 0,
  };

  constructor(readonly id: bigint, urls: string[], private readonly t: PeerTransport) {
    this.urls = urls.map(parsePeerUrl);
    if (this.urls.length === 0) throw new Error(`peer ${hex(id)}: no URLs`);
    this.backoffMs = t.cfg.backoffMinMs;
    this.connect();
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  enqueue(m: Message): void {
    if (this.state === 'closed') return;
    if (this.state === 'backoff') {
      this.drop(1);
      return;
    }
    const size = encodedMessageSize(m);
    if (size + 64 > this.t.cfg.maxFrameBytes) {
      this.t.logLine(`dropped a ${m.type} of ${size} bytes to ${hex(this.id)}: larger than the frame limit`);
      this.drop(1);
      return;
    }
    if (this.queued >= this.t.cfg.maxQueuedMessages || this.queuedBytes + size > this.t.cfg.maxQueuedBytes) {
      this.drop(1);
      return;
    }
    this.queue.push(m);
    this.sizes.push(size);
    this.queuedBytes += size;
    this.scheduleFlush();
  }

  private drop(n: number): void {
    if (n <= 0) return;
    this.stats.dropped += n;
    this.reportUnreachable();
  }

  private reportUnreachable(): void {
    const now = performance.now();
    if (now - this.lastUnreachable < this.t.cfg.unreachableIntervalMs) return;
    this.lastUnreachable = now;
    this.t.defer(() => this.t.opts.onUnreachable?.(this.id));
  }

  private clearQueue(): number {
    const n = this.queued;
    this.queue = [];
    this.sizes = [];
    this.head = 0;
    this.queuedBytes = 0;
    return n;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.state !== 'connected' || this.waitingDrain) return;
    this.flushScheduled = true;
    // A plain promise job: queueMicrotask wraps every callback in an AsyncResource, a cost paid per batch here.
    void Promise.resolve().then(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const maxBatch = this.t.cfg.maxBatchBytes;
    while (this.queued > 0 && this.state === 'connected' && !this.waitingDrain && this.socket) {
      const start = this.head;
      let bytes = 0;
      let end = start;
      while (end < this.queue.length && (end === start || bytes + this.sizes[end] <= maxBatch)) {
        bytes += this.sizes[end];
        end++;
      }
      const batch = this.queue.slice(start, end);
      const sizes = this.sizes.slice(start, end);
      this.head = end;
      this.queuedBytes -= bytes;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.sizes = [];
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.sizes = this.sizes.slice(this.head);
        this.head = 0;
      }
      const buf = this.encodeBatch(batch, sizes);
      if (!buf) continue;
      this.stats.batches++;
      this.stats.bytesSent += buf.length;
      const socket = this.socket;
      if (!socket.write(buf)) {
        this.waitingDrain = true;
        socket.once('drain', () => {
          if (socket !== this.socket) return;
          this.waitingDrain = false;
          this.flush();
        });
      }
    }
  }

  private encodeBatch(batch: Message[], sizes: number[]): Buffer | undefined {
    try {
      const buf = encodeMsgsFrame(batch, sizes);
      this.stats.sent += batch.length;
      return buf;
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      // Find the unencodable messages, drop them, send the rest.
      const good: Message[] = [];
      for (const m of batch) {
        try {
          encodeMessage(m);
          good.push(m);
        } catch (err) {
          this.t.logLine(`dropped an unencodable ${m.type} to ${hex(this.id)}: ${(err as Error).message}`);
          this.drop(1);
        }
      }
      if (good.length === 0) return undefined;
      this.stats.sent += good.length;
      return encodeMsgsFrame(good);
    }
  }

  private connect(): void {
    if (this.state === 'closed' || this.t.isStopped) return;
    this.state = 'connecting';
    this.timer = undefined;
    const hp = this.urls[this.urlIndex % this.urls.length];
    const hello = encodeHello({
      version: PROTOCOL_VERSION, stream: StreamKind.Messages, clusterId: this.t.opts.clusterId, from: this.t.opts.memberId, to: this.id,
    });
    let dialing: net.Socket | undefined;
    openStream(hp, hello, { clusterId: this.t.opts.clusterId, memberId: this.id }, this.t.cfg.dialTimeoutMs, (s) => {
      dialing = s;
      this.socket = s;
    }, this.t.opts.tls?.client).then(({ socket, rest }) => {
      if (this.socket !== socket || this.state !== 'connecting') {
        socket.destroy();
        return;
      }
      if (rest.length > 0) {
        this.fail(socket, `unexpected frame from ${hp.url} on a message stream`, false);
        return;
      }
      socket.on('data', () => this.fail(socket, `unexpected data from ${hp.url} on a message stream`, false));
      socket.on('error', (err) => this.fail(socket, err.message, false));
      socket.on('close', () => this.fail(socket, 'connection closed', false));
      socket.setKeepAlive(true, 5000);
      this.state = 'connected';
      this.backoffMs = this.t.cfg.backoffMinMs;
      this.lastFailure = '';
      if (this.everConnected) this.stats.reconnects++;
      this.everConnected = true;
      if (!this.active) {
        this.active = true;
        this.activeSince = Date.now();
        this.t.logLine(`peer ${hex(this.id)} became active (${hp.url})`);
      }
      this.flush();
    }, (err: Error) => {
      if (dialing && this.socket === dialing) this.fail(dialing, err.message, err instanceof HandshakeError && err.refused, hp.url);
    });
  }

  /** The connection failed: drop what was queued, report, and retry after a backoff. */
  private fail(socket: net.Socket, reason: string, refused: boolean, url?: string): void {
    if (socket !== this.socket || this.state === 'closed') return;
    this.socket = undefined;
    this.waitingDrain = false;
    socket.on('error', () => {});
    socket.destroy();
    const wasConnected = this.state === 'connected';
    this.drop(this.clearQueue());
    if (wasConnected) this.reportUnreachable();
    const where = url ?? this.urls[this.urlIndex % this.urls.length].url;
    if (refused) {
      if (reason !== this.lastFailure) {
        this.t.logLine(`error: member ${hex(this.id)} at ${where} refused the connection: ${reason}`);
      }
      const id = this.id;
      this.t.defer(() => this.t.opts.onRefused?.(id, reason));
    } else if (this.active) {
      this.t.logLine(`peer ${hex(this.id)} became inactive (${where}): ${reason}`);
    } else if (reason !== this.lastFailure && this.lastFailure === '') {
      this.t.logLine(`cannot reach peer ${hex(this.id)} at ${where}: ${reason} (retrying with backoff)`);
    }
    this.lastFailure = reason;
    this.active = false;
    this.activeSince = undefined;
    this.urlIndex++;
    this.state = 'backoff';
    if (this.t.isStopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.t.cfg.backoffMaxMs);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  updateUrls(urls: string[]): void {
    const parsed = urls.map(parsePeerUrl);
    if (parsed.length === 0) throw new Error(`peer ${hex(this.id)}: no URLs`);
    const current = this.urls[this.urlIndex % this.urls.length].url;
    this.urls = parsed;
    const idx = parsed.findIndex((p) => p.url === current);
    if (idx >= 0) {
      this.urlIndex = idx;
      return;
    }
    this.urlIndex = 0;
    // Reconnect now to the new URLs.
    if (this.state === 'backoff') {
      clearTimeout(this.timer);
      this.backoffMs = this.t.cfg.backoffMinMs;
      this.connect();
    } else if (this.socket) {
      const s = this.socket;
      this.socket = undefined;
      s.on('error', () => {});
      s.destroy();
      this.waitingDrain = false;
      this.state = 'backoff';
      this.backoffMs = this.t.cfg.backoffMinMs;
      this.connect();
    }
  }

  close(): void {
    this.state = 'closed';
    clearTimeout(this.timer);
    this.timer = undefined;
    this.clearQueue();
    for (const s of [this.socket, this.snapSocket]) {
      if (!s) continue;
      s.on('error', () => {});
      s.destroy();
    }
    this.socket = undefined;
    this.snapSocket = undefined;
  }

  /** Streams a MsgSnap on its own connection so it does not hold up the message stream. */
  sendSnapshot(m: Message): void {
    if (this.state === 'closed') return;
    if (this.snapInFlight) {
      this.t.logLine(`snapshot to ${hex(this.id)} refused: another snapshot to it is in flight`);
      this.snapshotDone(false);
      return;
    }
    this.snapInFlight = true;
    this.streamSnapshot(m).then(() => {
      this.t.logLine(`sent snapshot [index ${m.snapshot?.metadata.index}, ${m.snapshot?.data.byteLength} bytes] to ${hex(this.id)}`);
      this.snapshotDone(true);
    }, (err: Error) => {
      if (this.state !== 'closed' && !this.t.isStopped) {
        this.t.logLine(`failed to send snapshot to ${hex(this.id)}: ${err.message}`);
      }
      this.snapshotDone(false);
    });
  }

  private snapshotDone(ok: boolean): void {
    this.snapInFlight = false;
    if (ok) this.stats.snapshotsSent++;
    else this.stats.snapshotsFailed++;
    if (this.state === 'closed') return;
    if (!ok) this.reportUnreachable();
    this.t.defer(() => this.t.opts.onSnapshotStatus?.(this.id, ok));
  }

  private async streamSnapshot(m: Message): Promise<void> {
    const snap = m.snapshot;
    if (!snap) throw new Error('MsgSnap without a snapshot');
    const data = Buffer.from(snap.data.buffer, snap.data.byteOffset, snap.data.byteLength);
    const meta: Message = { ...m, snapshot: { metadata: snap.metadata, data: new Uint8Array(0) } };
    const begin = encodeSnapBegin(meta, data.length); // validates the message before dialing
    const hp = this.urls[this.urlIndex % this.urls.length];
    const hello = encodeHello({
      version: PROTOCOL_VERSION, stream: StreamKind.Snapshot, clusterId: this.t.opts.clusterId, from: this.t.opts.memberId, to: this.id,
    });
    const { socket, decoder, rest } = await openStream(hp, hello, { clusterId: this.t.opts.clusterId, memberId: this.id },
      this.t.cfg.dialTimeoutMs, (s) => {
        this.snapSocket = s;
      }, this.t.opts.tls?.client);
    if (this.snapSocket !== socket || this.state === 'closed') {
      socket.destroy();
      throw new Error('peer removed');
    }
    try {
      await new Promise<void>((resolve, reject) => {
        let done = false;
        const finish = (err?: Error): void => {
          if (done) return;
          done = true;
          if (err) reject(err);
          else resolve();
        };
        socket.setTimeout(this.t.cfg.snapshotIdleTimeoutMs, () => finish(new Error('snapshot stream idle timeout')));
        socket.on('error', (err) => finish(err));
        socket.on('close', () => finish(new Error('connection closed before the snapshot was acknowledged')));
        const handle = (frames: Frame[]): void => {
          for (const f of frames) {
            if (f.kind !== FrameKind.SnapResult) {
              finish(new Error(`unexpected frame kind ${f.kind} on a snapshot stream`));
              return;
            }
            const r = decodeSnapResult(f.body);
            if (r.ok) finish();
            else finish(new Error(`receiver failed: ${r.reason}`));
          }
        };
        socket.on('data', (chunk: Buffer) => {
          try {
            handle(decoder.push(chunk));
          } catch (e) {
            finish(e as Error);
          }
        });
        handle(rest);
        // Write the stream, respecting backpressure so a huge snapshot is never buffered twice.
        const chunkBytes = this.t.cfg.snapshotChunkBytes;
        let off = 0;
        let crc = 0; // computed chunk by chunk: one pass over hundreds of MB would block the event loop
        let begun = false;
        const pump = (): void => {
          if (done) return;
          if (!begun) {
            begun = true;
            if (!socket.write(begin)) {
              socket.once('drain', pump);
              return;
            }
          }
          while (off < data.length) {
            const end = Math.min(off + chunkBytes, data.length);
            const chunk = data.subarray(off, end);
            crc = crc32(chunk, crc);
            socket.cork();
            socket.write(frameHeader(FrameKind.SnapChunk, end - off));
            const ok = socket.write(chunk);
            socket.uncork();
            off = end;
            if (!ok) {
              socket.once('drain', pump);
              return;
            }
          }
          const end = Buffer.allocUnsafe(4);
          end.writeUInt32BE(crc, 0);
          socket.write(frame(FrameKind.SnapEnd, end));
        };
        pump();
      });
    } finally {
      if (this.snapSocket === socket) this.snapSocket = undefined;
      socket.on('error', () => {});
      socket.destroy();
    }
  }

  peerStats(): PeerStats {
    return {
      peerId: this.id, urls: this.urls.map((u) => u.url), connected: this.state === 'connected', queued: this.queued, ...this.stats,
    };
  }
}

interface ResolvedConfig {
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  maxBatchBytes: number;
  maxFrameBytes: number;
  snapshotChunkBytes: number;
  maxSnapshotBytes: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  dialTimeoutMs: number;
  snapshotIdleTimeoutMs: number;
  unreachableIntervalMs: number;
}

/**
 * The peer transport between members: TCP with length-prefixed binary frames (frames.ts, codec.ts).
 *
 * Each peer gets one outbound message connection with a bounded FIFO send queue; `send()` only enqueues, so
 * a slow or dead peer never stalls the caller or the other peers. Queued messages are written in batches (one
 * frame, one socket write) and only when the socket has drained, so the queue is where a slow peer's backlog
 * sits; when it is full, messages to that peer are dropped and counted and raft is told the peer is
 * unreachable. A failed connection drops its queue and retries with exponential backoff; while waiting,
 * messages to that peer are dropped at once. MsgSnap goes on a separate connection per snapshot, streamed in
 * chunks with backpressure, so heartbeats keep flowing meanwhile; its outcome is reported by onSnapshotStatus
 * once the receiver has handed it to raft. Inbound connections start with a handshake (protocol version,
 * cluster ID, sender and receiver member IDs); a mismatch is refused with the reason logged on both sides.
 */
export class PeerTransport {
  /** Test-only fault switch (see TransportFaults). */
  faults: TransportFaults = {};
  readonly cfg: ResolvedConfig;
  private readonly links = new Map<bigint, PeerLink>();
  private readonly servers: net.Server[] = [];
  private readonly inbound = new Set<net.Socket>();
  /** Accepted inbound connections by the member that opened them (closed when that member is removed). */
  private readonly inboundFrom = new Map<bigint, Set<net.Socket>>();
  private readonly deferred: Array<() => void> = [];
  private deferTimer?: NodeJS.Immediate;
  private readonly refusalLogged = new Map<string, number>();
  private readonly unknownLogged = new Set<bigint>();
  private stopped = false;
  private started = false;
  private received = 0;
  private unknownPeerDropped = 0;
  private faultDroppedInbound = 0;

  constructor(readonly opts: PeerTransportOptions) {
    this.cfg = {
      maxQueuedMessages: opts.maxQueuedMessages ?? 4096,
      maxQueuedBytes: opts.maxQueuedBytes ?? 64 * 1024 * 1024,
      maxBatchBytes: opts.maxBatchBytes ?? 1024 * 1024,
      maxFrameBytes: opts.maxFrameBytes ?? 256 * 1024 * 1024,
      snapshotChunkBytes: opts.snapshotChunkBytes ?? 1024 * 1024,
      maxSnapshotBytes: opts.maxSnapshotBytes ?? bufferConstants.MAX_LENGTH,
      backoffMinMs: opts.backoffMinMs ?? 50,
      backoffMaxMs: opts.backoffMaxMs ?? 2000,
      dialTimeoutMs: opts.dialTimeoutMs ?? 5000,
      snapshotIdleTimeoutMs: opts.snapshotIdleTimeoutMs ?? 30000,
      unreachableIntervalMs: opts.unreachableIntervalMs ?? 100,
    };
    if (opts.memberId === 0n) throw new Error('memberId must not be 0');
    for (const u of opts.listenUrls) parsePeerUrl(u);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Listens on every listen URL; resolves with the bound ports (in listenUrls order). */
  async start(): Promise<number[]> {
    if (this.started) throw new Error('transport already started');
    if (this.stopped) throw new Error('transport stopped');
    this.started = true;
    const ports: number[] = [];
    try {
      for (const u of this.opts.listenUrls) {
        const hp = parsePeerUrl(u);
        if (hp.secure && !this.opts.tls) throw new Error(`${u} is https but no peer TLS is configured`);
        const server = hp.secure ? tls.createServer(this.opts.tls!.server, (s) => this.accept(s)) : net.createServer((s) => this.accept(s));
        if (hp.secure) server.on('tlsClientError', (err, s) => {
          this.logLine(`rejected peer connection from ${s.remoteAddress}: ${err.message}`);
          s.destroy();
        });
        this.servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(hp.port, hp.host, () => {
            server.off('error', reject);
            resolve();
          });
        });
        server.on('error', (err) => this.logLine(`listener ${u}: ${err.message}`));
        ports.push((server.address() as net.AddressInfo).port);
        this.logLine(`listening for peers on ${hp.host}:${ports[ports.length - 1]}`);
      }
    } catch (e) {
      // Close what did bind, but stay usable: the owner may try to start again later.
      const bound = this.servers.splice(0);
      await Promise.all(bound.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
      this.started = false;
      throw new Error(`cannot listen for peers: ${(e as Error).message}`);
    }
    return ports;
  }

  addPeer(id: bigint, urls: string[]): void {
    if (this.stopped) return;
    if (id === this.opts.memberId) throw new Error('cannot add self as a peer');
    if (this.links.has(id)) throw new Error(`peer ${hex(id)} already added`);
    this.links.set(id, new PeerLink(id, urls, this));
    this.unknownLogged.delete(id);
  }

  /** Forgets a peer: its outbound link closes, and so do the connections it opened to us (a removed member must
   * dial again, and then learns from acceptPeer's refusal that it was removed). */
  removePeer(id: bigint): void {
    const link = this.links.get(id);
    if (link) {
      link.close();
      this.links.delete(id);
    }
    for (const socket of this.inboundFrom.get(id) ?? []) {
      socket.on('error', () => {});
      socket.destroy();
    }
    this.inboundFrom.delete(id);
  }

  updatePeer(id: bigint, urls: string[]): void {
    const link = this.links.get(id);
    if (!link) throw new Error(`peer ${hex(id)} not found`);
    link.updateUrls(urls);
  }

  hasPeer(id: bigint): boolean {
    return this.links.has(id);
  }

  /** Enqueues each message for its peer and returns at once (raft's Ready messages). */
  send(messages: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of messages) {
      if (m.to === this.opts.memberId) continue;
      const link = this.links.get(m.to);
      if (!link) {
        this.unknownPeerDropped++;
        if (!this.unknownLogged.has(m.to)) {
          this.unknownLogged.add(m.to);
          this.logLine(`ignored message send request: unknown remote peer ${hex(m.to)}`);
        }
        continue;
      }
      const f = this.faults;
      if ((f.partitioned && f.partitioned.has(m.to)) || (f.drop && f.drop(m.to, m))) {
        link.stats.faultDropped++;
        if (m.type === MessageType.MsgSnap) {
          link.stats.snapshotsFailed++;
          this.defer(() => this.opts.onSnapshotStatus?.(m.to, false));
        }
        continue;
      }
      if (m.type === MessageType.MsgSnap) link.sendSnapshot(m);
      else link.enqueue(m);
    }
  }

  stats(): TransportStats {
    const peers = [...this.links.values()].map((l) => l.peerStats());
    return {
      received: this.received,
      unknownPeerDropped: this.unknownPeerDropped,
      faultDroppedInbound: this.faultDroppedInbound,
      dropped: peers.reduce((s, p) => s + p.dropped, 0),
      peers,
    };
  }

  peerStats(id: bigint): PeerStats | undefined {
    return this.links.get(id)?.peerStats();
  }

  /** Since when (Date.now() ms) the peer's connection has been up; undefined while it is down or unknown. */
  activeSince(id: bigint): number | undefined {
    return this.links.get(id)?.activeSince;
  }

  /** Closes every connection and listener; no callback runs after this resolves. */
  async stop(): Promise<void> {
    if (this.stopped && this.servers.length === 0) return;
    this.stopped = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const s of this.inbound) {
      s.on('error', () => {});
      s.destroy();
    }
    this.inbound.clear();
    if (this.deferTimer) clearImmediate(this.deferTimer);
    this.deferTimer = undefined;
    this.deferred.length = 0;
    const servers = this.servers.splice(0);
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
      if (!s.listening) {
        resolve();
        return;
      }
      s.close(() => resolve());
    })));
  }

  /** @internal */
  logLine(line: string): void {
    this.opts.log?.(`peer transport ${hex(this.opts.memberId)}: ${line}`);
  }

  /** @internal Runs callbacks on a later turn, never inside send() or a socket callback's caller stack. */
  defer(fn: () => void): void {
    if (this.stopped) return;
    this.deferred.push(fn);
    if (this.deferTimer) return;
    this.deferTimer = setImmediate(() => {
      this.deferTimer = undefined;
      const fns = this.deferred.splice(0);
      for (const f of fns) {
        if (this.stopped) return;
        try {
          f();
        } catch (e) {
          this.logLine(`callback failed: ${(e as Error).message}`);
        }
      }
    });
  }

  private accept(socket: net.Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    this.inbound.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    let decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME);
    let stream: StreamKind | undefined;
    let from = 0n;
    let snap: SnapshotReceiver | undefined;
    let closed = false;
    const close = (reason?: string): void => {
      if (closed) return;
      closed = true;
      clearTimeout(helloTimer);
      if (reason) this.logLine(`closed connection from ${from ? hex(from) : 'unknown member'} (${remote}): ${reason}`);
      socket.on('error', () => {});
      socket.destroy();
      this.inbound.delete(socket);
      this.inboundFrom.get(from)?.delete(socket);
    };
    const helloTimer = setTimeout(() => close('no handshake'), this.cfg.dialTimeoutMs);
    socket.on('error', () => close());
    socket.on('close', () => close());

    const refuse = (code: RejectCode, reason: string, who: string): void => {
      const key = `${who}/${code}`;
      const now = performance.now();
      const last = this.refusalLogged.get(key);
      if (last === undefined || now - last > 10000) {
        this.refusalLogged.set(key, now);
        this.logLine(`error: refused connection from member ${who} (${remote}): ${reason}`);
      }
      closed = true;
      clearTimeout(helloTimer);
      socket.on('error', () => {});
      socket.once('close', () => this.inbound.delete(socket));
      // The peer closes on reading the rejection; make sure the socket goes away even if it does not.
      socket.setTimeout(1000, () => socket.destroy());
      socket.end(encodeReject(code, reason));
    };

    const onHello = (f: Frame): void => {
      if (f.kind !== FrameKind.Hello) return refuse(RejectCode.BadHello, `expected a handshake, got frame kind ${f.kind}`, 'unknown');
      const h = decodeHello(f.body);
      if (!h) return refuse(RejectCode.BadHello, 'malformed handshake (not a nestcd peer?)', 'unknown');
      if (h.version !== PROTOCOL_VERSION) {
        return refuse(RejectCode.VersionMismatch,
          `protocol version mismatch: local ${PROTOCOL_VERSION}, remote ${h.version}`, h.from ? hex(h.from) : 'unknown');
      }
      if (h.stream === StreamKind.ClusterInfo) {
        if (!this.opts.clusterInfo) return refuse(RejectCode.PeerRefused, 'this member does not answer cluster-info requests', 'unknown');
        closed = true;
        clearTimeout(helloTimer);
        socket.on('error', () => {});
        socket.once('close', () => this.inbound.delete(socket));
        socket.setTimeout(1000, () => socket.destroy());
        socket.end(frame(FrameKind.ClusterInfo, this.opts.clusterInfo()));
        return;
      }
      const who = hex(h.from);
      if (h.clusterId !== this.opts.clusterId) {
        return refuse(RejectCode.ClusterIdMismatch,
          `cluster ID mismatch: local ${hex(this.opts.clusterId)}, remote ${hex(h.clusterId)}`, who);
      }
      if (h.to !== 0n && h.to !== this.opts.memberId) {
        return refuse(RejectCode.MemberIdMismatch,
          `member ID mismatch: this member is ${hex(this.opts.memberId)}, remote expected ${hex(h.to)}`, who);
      }
      if (h.from === 0n || h.from === this.opts.memberId) return refuse(RejectCode.BadHello, `invalid sender ID ${who}`, who);
      if (h.stream !== StreamKind.Messages && h.stream !== StreamKind.Snapshot) {
        return refuse(RejectCode.BadHello, `unknown stream kind ${h.stream}`, who);
      }
      const why = this.opts.acceptPeer?.(h.from);
      if (why !== undefined) return refuse(RejectCode.PeerRefused, why, who);
      clearTimeout(helloTimer);
      from = h.from;
      stream = h.stream;
      let mine = this.inboundFrom.get(from);
      if (!mine) this.inboundFrom.set(from, (mine = new Set()));
      mine.add(socket);
      socket.write(encodeHelloOk(PROTOCOL_VERSION, this.opts.clusterId, this.opts.memberId));
      if (stream === StreamKind.Messages) {
        decoder = new FrameDecoder(this.cfg.maxFrameBytes);
      } else {
        decoder = new FrameDecoder(SNAPSHOT_CONTROL_MAX_FRAME, new Set([FrameKind.SnapChunk]));
        snap = new SnapshotReceiver(this, from, socket);
        socket.setTimeout(this.cfg.snapshotIdleTimeoutMs, () => close('snapshot stream idle timeout'));
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (closed) return;
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        close(`protocol error: ${(e as Error).message}`);
        return;
      }
      for (const f of frames) {
        if (closed || this.stopped) return;
        if (stream === undefined) {
          onHello(f);
          // Frames after the hello in the same chunk were decoded with the handshake limit; re-read none of them:
          // a dialer never sends before HELLO_OK, so anything here is a protocol violation.
          if (!closed && frames.length > 1) close('data before the handshake completed');
          return;
        }
        if (stream === StreamKind.Messages) {
          if (f.kind !== FrameKind.Msgs) {
            close(`unexpected frame kind ${f.kind} on a message stream`);
            return;
          }
          let msgs: Message[];
          try {
            msgs = decodeMsgsBody(f.body);
          } catch (e) {
            close(`bad message frame: ${(e as Error).message}`);
            return;
          }
          this.deliver(from, msgs);
        } else if (snap) {
          snap.frame(f);
        }
      }
    });
  }

  private deliver(from: bigint, msgs: Message[]): void {
    const part = this.faults.partitioned;
    for (const m of msgs) {
      if (this.stopped) return;
      if (part && (part.has(from) || part.has(m.from))) {
        this.faultDroppedInbound++;
        continue;
      }
      if (m.to !== this.opts.memberId) {
        this.logLine(`ignored a ${m.type} from ${hex(from)} addressed to ${hex(m.to)}`);
        continue;
      }
      this.received++;
      try {
        const r = this.opts.onMessage(m);
        if (r && typeof (r as Promise<void>).catch === 'function') {
          (r as Promise<void>).catch((e: unknown) => this.logLine(`onMessage failed: ${(e as Error).message}`));
        }
      } catch (e) {
        this.logLine(`onMessage failed for a ${m.type} from ${hex(from)}: ${(e as Error).message}`);
      }
    }
  }

  /** @internal Hands a fully received snapshot to onMessage; resolves with a failure reason, or undefined once accepted. */
  async deliverSnapshot(from: bigint, m: Message): Promise<string | undefined> {
    if (this.stopped) return 'transport stopped';
    const part = this.faults.partitioned;
    if (part && (part.has(from) || part.has(m.from))) {
      this.faultDroppedInbound++;
      return 'partitioned (fault injection)';
    }
    if (m.to !== this.opts.memberId) return `snapshot addressed to ${hex(m.to)}`;
    this.received++;
    try {
      await this.opts.onMessage(m);
      return undefined;
    } catch (e) {
      return `applying the snapshot failed: ${(e as Error).message}`;
    }
  }
}

/** Receiving side of one snapshot stream: SNAP_BEGIN, SNAP_CHUNK..., SNAP_END, then one SNAP_RESULT. */
class SnapshotReceiver {
  private msg?: Message;
  private data?: Buffer;
  private got = 0;
  private crc = 0;
  private ended = false;

  constructor(
    private readonly t: PeerTransport, private readonly from: bigint, private readonly socket: net.Socket,
  ) {}

  frame(f: Frame): void {
    try {
      this.handle(f);
    } catch (e) {
      this.fail(`bad snapshot stream: ${(e as Error).message}`);
    }
  }

  private handle(f: Frame): void {
    if (this.ended) throw new Error(`frame kind ${f.kind} after SNAP_END`);
    switch (f.kind) {
      case FrameKind.SnapBegin: {
        if (this.msg) throw new Error('second SNAP_BEGIN');
        const { dataLength, msg } = decodeSnapBegin(f.body);
        if (msg.type !== MessageType.MsgSnap || !msg.snapshot) throw new Error(`SNAP_BEGIN carries a ${msg.type}`);
        if (dataLength > this.t.cfg.maxSnapshotBytes) {
          throw new Error(`snapshot of ${dataLength} bytes exceeds the limit of ${this.t.cfg.maxSnapshotBytes}`);
        }
        this.msg = msg;
        this.data = Buffer.allocUnsafe(dataLength);
        this.t.logLine(`receiving snapshot [index ${msg.snapshot.metadata.index}, ${dataLength} bytes] from ${hex(this.from)}`);
        return;
      }
      case FrameKind.SnapChunk: {
        if (!this.data) throw new Error('SNAP_CHUNK before SNAP_BEGIN');
        if (this.got + f.body.length > this.data.length) throw new Error('more snapshot data than announced');
        f.body.copy(this.data, this.got);
        this.crc = crc32(f.body, this.crc);
        this.got += f.body.length;
        return;
      }
      case FrameKind.SnapEnd: {
        if (!this.data || !this.msg?.snapshot) throw new Error('SNAP_END before SNAP_BEGIN');
        if (this.got !== this.data.length) throw new Error(`snapshot truncated: ${this.got} of ${this.data.length} bytes`);
        if (f.body.length !== 4) throw new Error('malformed SNAP_END');
        const want = f.body.readUInt32BE(0);
        const have = this.crc;
        if (want !== have) throw new Error(`snapshot checksum mismatch (sent ${want.toString(16)}, got ${have.toString(16)})`);
        this.ended = true;
        const data = this.data;
        const msg: Message = {
          ...this.msg,
          snapshot: { metadata: this.msg.snapshot.metadata, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) },
        };
        this.data = undefined;
        void this.t.deliverSnapshot(this.from, msg).then((err) => {
          if (err) this.fail(err);
          else this.reply(true, '');
        });
        return;
      }
      default:
        throw new Error(`unexpected frame kind ${f.kind}`);
    }
  }

  private fail(reason: string): void {
    this.ended = true;
    this.data = undefined;
    this.t.logLine(`snapshot from ${hex(this.from)} failed: ${reason}`);
    this.reply(false, reason);
  }

  private reply(ok: boolean, reason: string): void {
    if (this.socket.destroyed) return;
    // The sender closes the connection once it has read the result (or the idle timeout does).
    this.socket.end(encodeSnapResult(ok, reason));
  }
}

/**
 * Asks the member listening at `peerUrl` for its cluster's member table (a cluster-info stream): what a member
 * joining an existing cluster does before it knows the cluster's or its own ID.
 */
export async function fetchClusterInfo(peerUrl: string, timeoutMs = 5000): Promise<Buffer> {
  const hp = parsePeerUrl(peerUrl);
  const hello = encodeHello({ version: PROTOCOL_VERSION, stream: StreamKind.ClusterInfo, clusterId: 0n, from: 0n, to: 0n });
  return new Promise<Buffer>((resolve, reject) => {
    const socket = net.connect({ host: hp.host, port: hp.port });
    const decoder = new FrameDecoder(SNAPSHOT_CONTROL_MAX_FRAME);
    let settled = false;
    const finish = (err?: Error, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.on('error', () => {});
      socket.destroy();
      if (err) reject(err);
      else resolve(body!);
    };
    const timer = setTimeout(() => finish(new Error(`no answer from ${peerUrl} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.write(hello));
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        finish(new Error(`bad answer from ${peerUrl}: ${(e as Error).message}`));
        return;
      }
      const f = frames[0];
      if (!f) return;
      if (f.kind === FrameKind.ClusterInfo) finish(undefined, Buffer.from(f.body));
      else if (f.kind === FrameKind.HelloReject) finish(new Error(`${peerUrl} refused: ${decodeReject(f.body).reason}`));
      else finish(new Error(`unexpected frame kind ${f.kind} from ${peerUrl}`));
    });
    socket.on('error', (err) => finish(new Error(`cannot reach ${peerUrl}: ${err.message}`)));
    socket.on('close', () => finish(new Error(`${peerUrl} closed the connection`)));
  });
}
