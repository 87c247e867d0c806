import { createHook } from 'node:async_hooks';
import * as net from 'node:net';
import { EntryType, Message, MessageType, emptyMessage } from '@nestcd/raft';
import { encodeHelloOk, PROTOCOL_VERSION } from './frames';
import { PeerTransport, PeerTransportOptions } from './peer-transport';

const CLUSTER = 0xc1057e2n;

interface Node {
  id: bigint;
  t: PeerTransport;
  url: string;
  port: number;
  got: Message[];
  logs: string[];
  /** got.length when each log line was written. */
  logAt: number[];
  unreachable: bigint[];
  snapStatus: Array<[bigint, boolean]>;
}

const live: PeerTransport[] = [];
const rawServers: net.Server[] = [];
const rawSockets = new Set<net.Socket>();

async function mk(id: bigint, extra: Partial<PeerTransportOptions> = {}, port = 0): Promise<Node> {
  const n = { id, got: [], logs: [], logAt: [], unreachable: [], snapStatus: [] } as unknown as Node;
  n.t = new PeerTransport({
    memberId: id,
    clusterId: CLUSTER,
    listenUrls: [`http://127.0.0.1:${port}`],
    log: (l) => {
      n.logs.push(l);
      n.logAt.push(n.got.length);
    },
    onMessage: (m) => {
      n.got.push(m);
    },
    onUnreachable: (p) => n.unreachable.push(p),
    onSnapshotStatus: (p, ok) => n.snapStatus.push([p, ok]),
    ...extra,
  });
  live.push(n.t);
  [n.port] = await n.t.start();
  n.url = `http://127.0.0.1:${n.port}`;
  return n;
}

function connectAll(nodes: Node[]): void {
  for (const a of nodes) for (const b of nodes) if (a !== b) a.t.addPeer(b.id, [b.url]);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function hb(from: bigint, to: bigint, seq: number): Message {
  return { ...emptyMessage(MessageType.MsgHeartbeat, to), from, term: 1, commit: seq };
}

function app(from: bigint, to: bigint, seq: number, dataBytes: number): Message {
  return {
    ...emptyMessage(MessageType.MsgApp, to), from, term: 3, logTerm: 3, index: seq, commit: seq,
    entries: [{ type: EntryType.Normal, term: 3, index: seq + 1, data: new Uint8Array(dataBytes).fill(seq & 0xff) }],
  };
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A peer that completes the handshake and then never reads: its TCP window fills up. */
async function stalledPeer(memberId: bigint): Promise<string> {
  const s = net.createServer((sock) => {
    rawSockets.add(sock);
    sock.on('error', () => {});
    sock.once('data', () => {
      sock.write(encodeHelloOk(PROTOCOL_VERSION, CLUSTER, memberId));
      sock.pause();
    });
  });
  rawServers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`;
}

afterEach(async () => {
  await Promise.all(live.splice(0).map((t) => t.stop()));
  for (const s of rawSockets) s.destroy();
  rawSockets.clear();
  await Promise.all(rawServers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

describe('PeerTransport', () => {
  it('two transports exchange messages in order, both ways', async () => {
    const [a, b] = [await mk(1n), await mk(2n)];
    connectAll([a, b]);
    for (let i = 0; i < 2000; i++) {
      a.t.send([hb(1n, 2n, i)]);
      b.t.send([app(2n, 1n, i, 16)]);
      if (i % 100 === 0) await sleep(0);
    }
    await waitFor(() => a.got.length === 2000 && b.got.length === 2000, 'all messages');
    expect(b.got.map((m) => m.commit)).toEqual([...Array(2000).keys()]);
    expect(a.got.map((m) => m.index)).toEqual([...Array(2000).keys()]);
    expect(a.got[7]).toEqual(app(2n, 1n, 7, 16));
    expect(b.got.every((m) => m.type === MessageType.MsgHeartbeat && m.from === 1n && m.to === 2n)).toBe(true);
    expect(a.t.stats().dropped + b.t.stats().dropped).toBe(0);
  });

  it('three transports: every pair delivers in per-sender order', async () => {
    const nodes = [await mk(1n), await mk(2n), await mk(3n)];
    connectAll(nodes);
    const N = 500;
    for (let i = 0; i < N; i++) {
      for (const n of nodes) n.t.send(nodes.filter((o) => o !== n).map((o) => app(n.id, o.id, i, 8)));
    }
    await waitFor(() => nodes.every((n) => n.got.length === 2 * N), 'all messages');
    for (const n of nodes) {
      for (const o of nodes) {
        if (o === n) continue;
        expect(n.got.filter((m) => m.from === o.id).map((m) => m.index)).toEqual([...Array(N).keys()]);
      }
    }
  });

  it('batches queued messages into one frame', async () => {
    const [a, b] = [await mk(1n), await mk(2n)];
    a.t.addPeer(2n, [b.url]);
    await waitFor(() => a.t.peerStats(2n)!.connected, 'connection');
    // One send() call with 300 messages, then 200 more in separate calls within the same tick.
    a.t.send(Array.from({ length: 300 }, (_, i) => app(1n, 2n, i, 100)));
    for (let i = 300; i < 500; i++) a.t.send([app(1n, 2n, i, 100)]);
    await waitFor(() => b.got.length === 500, 'all messages');
    const st = a.t.peerStats(2n)!;
    expect(st.sent).toBe(500);
    expect(st.batches).toBe(1);
    expect(b.got.map((m) => m.index)).toEqual([...Array(500).keys()]);
    // Batches are capped by maxBatchBytes: 4 MiB of 64 KiB entries cannot go out in one frame.
    a.t.send(Array.from({ length: 64 }, (_, i) => app(1n, 2n, i, 64 * 1024)));
    await waitFor(() => b.got.length === 564, 'large messages');
    expect(a.t.peerStats(2n)!.batches).toBeGreaterThanOrEqual(1 + 4);
  });

  it('a dead peer does not block sends to a live one and is reported unreachable', async () => {
    const [a, b] = [await mk(1n), await mk(2n)];
    const port = await deadPort();
    a.t.addPeer(2n, [b.url]);
    a.t.addPeer(9n, [`http://127.0.0.1:${port}`]);
    let t0 = performance.now();
    let sendMs = 0;
    for (let i = 0; i < 20000; i++) {
      a.t.send([hb(1n, 9n, i), hb(1n, 2n, i)]);
      if (i % 1000 === 999) {
        sendMs += performance.now() - t0;
        await sleep(1); // let the live peer's queue (4096 messages) drain
        t0 = performance.now();
      }
    }
    await waitFor(() => b.got.length === 20000, 'live peer messages');
    await waitFor(() => a.unreachable.includes(9n), 'unreachable report');
    expect(a.unreachable).not.toContain(2n);
    expect(b.got.map((m) => m.commit)).toEqual([...Array(20000).keys()]);
    const dead = a.t.peerStats(9n)!;
    expect(dead.connected).toBe(false);
    expect(dead.dropped).toBeGreaterThan(0);
    expect(dead.sent).toBe(0);
    expect(a.logs.some((l) => l.includes('cannot reach peer 9'))).toBe(true);
    expect(sendMs).toBeLessThan(2000); // 40k enqueues: non-blocking
  });

  it('a stalled peer (connected, never reads) fills its own queue, drops and counts, and never stalls the others', async () => {
    const [a, b] = [await mk(1n, { maxQueuedMessages: 256 }), await mk(2n)];
    const stalled = await stalledPeer(5n);
    a.t.addPeer(2n, [b.url]);
    a.t.addPeer(5n, [stalled]);
    await waitFor(() => a.t.peerStats(5n)!.connected && a.t.peerStats(2n)!.connected, 'connections');
    for (let i = 0; i < 2000; i++) {
      a.t.send([app(1n, 5n, i, 32 * 1024), hb(1n, 2n, i)]);
      if (i % 50 === 0) await sleep(1);
    }
    await waitFor(() => b.got.length === 2000, 'live peer messages');
    const st = a.t.peerStats(5n)!;
    expect(st.dropped).toBeGreaterThan(0);
    expect(st.queued).toBeLessThanOrEqual(256);
    expect(st.sent + st.dropped + st.queued).toBe(2000);
    expect(a.unreachable).toContain(5n);
    expect(a.t.peerStats(2n)!.dropped).toBe(0);
  });

  it('queue overflow drops the excess and counts it', async () => {
    const [a, b] = [await mk(1n, { maxQueuedMessages: 100 }), await mk(2n)];
    a.t.addPeer(2n, [b.url]);
    // Still connecting: the queue holds 100, the rest are dropped.
    a.t.send(Array.from({ length: 1000 }, (_, i) => hb(1n, 2n, i)));
    expect(a.t.peerStats(2n)!.queued).toBe(100);
    expect(a.t.peerStats(2n)!.dropped).toBe(900);
    await waitFor(() => b.got.length === 100, 'queued messages');
    expect(b.got.map((m) => m.commit)).toEqual([...Array(100).keys()]);
    await waitFor(() => a.unreachable.includes(2n), 'unreachable report');
    expect(a.t.stats().dropped).toBe(900);
  });

  it('reconnects after the peer restarts (and follows updatePeer to a new address)', async () => {
    const a = await mk(1n, { backoffMaxMs: 200 });
    let b = await mk(2n);
    const port = b.port;
    a.t.addPeer(2n, [b.url]);
    a.t.send([hb(1n, 2n, 1)]);
    await waitFor(() => b.got.length === 1, 'first message');
    await b.t.stop();
    await waitFor(() => !a.t.peerStats(2n)!.connected, 'disconnect noticed');
    a.t.send([hb(1n, 2n, 2)]); // lost: the peer is down
    b = await mk(2n, {}, port);
    let seq = 100;
    await waitFor(() => {
      a.t.send([hb(1n, 2n, seq++)]);
      return b.got.length > 0;
    }, 'delivery after restart');
    expect(a.t.peerStats(2n)!.reconnects).toBeGreaterThanOrEqual(1);
    expect(a.logs.some((l) => l.includes('peer 2 became inactive'))).toBe(true);
    expect(a.unreachable).toContain(2n);

    // The peer moves: a new transport on another port, announced with updatePeer.
    await b.t.stop();
    const c = await mk(2n);
    a.t.updatePeer(2n, [c.url]);
    await waitFor(() => {
      a.t.send([hb(1n, 2n, seq++)]);
      return c.got.length > 0;
    }, 'delivery after updatePeer');
  });

  it('streams a 50 MB snapshot in chunks on its own connection while heartbeats keep flowing', async () => {
    const [a, b] = [await mk(1n), await mk(2n)];
    a.t.addPeer(2n, [b.url]);
    await waitFor(() => a.t.peerStats(2n)!.connected, 'connection');
    const data = new Uint8Array(50 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff;
    data[data.length - 1] = 0x5a;
    const snapMsg: Message = {
      ...emptyMessage(MessageType.MsgSnap, 2n), from: 1n, term: 7,
      snapshot: { data, metadata: { index: 12345, term: 6, confState: { voters: [1n, 2n, 3n], learners: [4n] } } },
    };
    let seq = 0;
    const beating = setInterval(() => a.t.send([hb(1n, 2n, seq++)]), 1);
    try {
      a.t.send([snapMsg]);
      await waitFor(() => a.snapStatus.length === 1, 'snapshot status', 20000);
    } finally {
      clearInterval(beating);
    }
    expect(a.snapStatus).toEqual([[2n, true]]);
    const snapAt = b.got.findIndex((m) => m.type === MessageType.MsgSnap);
    expect(snapAt).toBeGreaterThanOrEqual(0);
    const got = b.got[snapAt];
    expect(got.snapshot!.metadata).toEqual(snapMsg.snapshot!.metadata);
    expect(got.term).toBe(7);
    expect(Buffer.from(got.snapshot!.data).equals(Buffer.from(data))).toBe(true);
    // Heartbeats kept arriving between the start of the snapshot stream and its delivery.
    const began = b.logs.findIndex((l) => l.includes('receiving snapshot [index 12345, 52428800 bytes] from 1'));
    expect(began).toBeGreaterThanOrEqual(0);
    const beatsDuring = b.got.slice(b.logAt[began], snapAt).filter((m) => m.type === MessageType.MsgHeartbeat);
    expect(beatsDuring.length).toBeGreaterThan(0);
    // ... and none was lost or reordered.
    const beats = b.got.filter((m) => m.type === MessageType.MsgHeartbeat).map((m) => m.commit);
    expect(beats).toEqual([...Array(beats.length).keys()]);
    // eslint-disable-next-line no-console
    console.log(`${beatsDuring.length} heartbeats delivered while the 50 MB snapshot was streaming (${beats.length} in all)`);
    expect(a.t.peerStats(2n)!.snapshotsSent).toBe(1);
  });

  it('reports a failed snapshot (receiver down or refusing) with onSnapshotStatus(peer, false)', async () => {
    const a = await mk(1n);
    const b = await mk(2n, { onMessage: () => Promise.reject(new Error('disk full')) });
    const port = await deadPort();
    a.t.addPeer(2n, [b.url]);
    a.t.addPeer(9n, [`http://127.0.0.1:${port}`]);
    const snap = (to: bigint): Message => ({
      ...emptyMessage(MessageType.MsgSnap, to), from: 1n,
      snapshot: { data: new Uint8Array(3 * 1024 * 1024), metadata: { index: 5, term: 1, confState: { voters: [1n], learners: [] } } },
    });
    a.t.send([snap(9n), snap(2n)]);
    await waitFor(() => a.snapStatus.length === 2, 'snapshot statuses');
    expect(a.snapStatus).toEqual(expect.arrayContaining([[9n, false], [2n, false]]));
    expect(a.logs.some((l) => l.includes('receiver failed: applying the snapshot failed: disk full'))).toBe(true);
  });

  it('refuses a member of another cluster, with a clear error logged on both sides', async () => {
    const a = await mk(1n);
    const other = await mk(2n, { clusterId: 0xbadn });
    a.t.addPeer(2n, [other.url]);
    a.t.send([hb(1n, 2n, 1)]);
    await waitFor(() => a.logs.some((l) => l.includes('refused the connection')) &&
      other.logs.some((l) => l.includes('refused connection')), 'refusal logs');
    expect(a.logs.find((l) => l.includes('refused the connection'))).toMatch(
      /error: member 2 at http:\/\/127\.0\.0\.1:\d+ refused the connection: cluster ID mismatch: local bad, remote c1057e2/);
    expect(other.logs.find((l) => l.includes('refused connection'))).toMatch(
      /error: refused connection from member 1 \(127\.0\.0\.1:\d+\): cluster ID mismatch: local bad, remote c1057e2/);
    expect(other.got).toHaveLength(0);
    expect(a.t.peerStats(2n)!.connected).toBe(false);
    // A member ID mismatch (the URL belongs to someone else) is refused too.
    const c = await mk(3n);
    a.t.addPeer(4n, [c.url]);
    await waitFor(() => c.logs.some((l) => l.includes('member ID mismatch')), 'member ID refusal');
    await waitFor(() => a.logs.some((l) => l.includes('member 4 at') && l.includes('member ID mismatch')), 'dialer log');
  });

  it('fault switch: partitioned peers and a drop filter cut links silently', async () => {
    const [a, b] = [await mk(1n), await mk(2n)];
    connectAll([a, b]);
    a.t.faults = { partitioned: new Set([2n]) };
    a.t.send([hb(1n, 2n, 1)]);
    b.t.send([hb(2n, 1n, 1)]);
    // On a loaded machine b's heartbeat may take a while to arrive (and be dropped): wait for it, not a fixed time.
    await waitFor(() => a.t.stats().faultDroppedInbound === 1, 'inbound drop');
    await sleep(50);
    expect(a.got).toHaveLength(0);
    expect(b.got).toHaveLength(0);
    expect(a.t.peerStats(2n)!.faultDropped).toBe(1);
    expect(a.t.stats().faultDroppedInbound).toBe(1);
    a.t.faults = { drop: (_to, m) => m.commit % 2 === 1 };
    a.t.send([hb(1n, 2n, 1), hb(1n, 2n, 2), hb(1n, 2n, 3), hb(1n, 2n, 4)]);
    b.t.send([hb(2n, 1n, 9)]);
    await waitFor(() => b.got.length === 2 && a.got.length === 1, 'healed link');
    expect(b.got.map((m) => m.commit)).toEqual([2, 4]);
    expect(a.unreachable).toHaveLength(0);
  });

  it('stop() closes every socket, listener and timer', async () => {
    // Every handle the transport creates is tracked from its creation to its destruction. A resource is the
    // transport's when it is created in transport code, or on behalf of a resource that is (a listen deferred to
    // a tick, an accepted connection, a promise's continuation outside this file). Counting all live handles would also
    // count timers that earlier test files in the same jest process start meanwhile.
    const kinds = new Set(['TCPWRAP', 'TCPSERVERWRAP', 'Timeout', 'Immediate']);
    const owned = new Set<number>();
    const tracked = new Map<number, string>();
    const stackLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 100;
    const hook = createHook({
      init(id, type, trigger) {
        // synchronous frames below this hook only (V8 appends `at async` frames of the awaiting callers)
        const stack = (new Error().stack ?? '').split('\n').slice(2).filter((l) => !l.includes(' at async ')).join('\n');
        // (the test's own timers, created after awaiting a transport promise, are not the transport's)
        const mine = /peer-transport\.ts:/.test(stack) || (owned.has(trigger) && !/peer-transport\.spec\.ts:/.test(stack));
        if (!mine) return;
        owned.add(id);
        if (kinds.has(type)) tracked.set(id, type);
      },
      destroy(id) {
        tracked.delete(id);
      },
    });
    hook.enable();
    try {
      const port = await deadPort();
      const nodes = [await mk(1n), await mk(2n), await mk(3n)];
      connectAll(nodes);
      nodes[0].t.addPeer(9n, [`http://127.0.0.1:${port}`]); // in reconnect backoff at stop time
      for (const n of nodes) n.t.send(nodes.filter((o) => o !== n).map((o) => hb(n.id, o.id, 1)));
      await waitFor(() => nodes.every((n) => n.got.length === 2), 'traffic');
      nodes[0].t.send([{ ...emptyMessage(MessageType.MsgSnap, 2n), from: 1n,
        snapshot: { data: new Uint8Array(8 << 20), metadata: { index: 1, term: 1, confState: { voters: [], learners: [] } } } }]);
      const live = () => [...tracked.values()].sort();
      // The tracking sees the transports' listeners, connections (dialled and accepted) and timers.
      expect(live().filter((t) => t === 'TCPSERVERWRAP')).toHaveLength(3);
      expect(live().filter((t) => t === 'TCPWRAP').length).toBeGreaterThanOrEqual(6);
      await Promise.all(nodes.map((n) => n.t.stop()));
      await sleep(20); // let destroyed handles finish closing
      expect(live()).toEqual([]);
      // Idempotent, and inert afterwards.
      await nodes[0].t.stop();
      nodes[0].t.send([hb(1n, 2n, 2)]);
      await sleep(20);
      expect(live()).toEqual([]);
    } finally {
      hook.disable();
      Error.stackTraceLimit = stackLimit;
    }
  });
});
