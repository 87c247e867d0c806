import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { FrontDoor, FrontDoorStats, sniffHttp1 } from './front-door';
import { SplitExchange, SplitStreamHandler, SplitStreamIo, withPeerAddresses } from './front-door-split';

// End to end: a real grpc-js server behind the front door, real grpc-js clients, raw sockets.

const bytes = (b: Buffer): Buffer => b;
const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: bytes,
  requestDeserialize: bytes,
  responseSerialize: bytes,
  responseDeserialize: bytes,
});
const ECHO = {
  Unary: method('/test.Echo/Unary', false, false),
  Bidi: method('/test.Echo/Bidi', true, true),
};
const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
type Client = grpc.Client & Record<string, any>;

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Harness {
  cancelled: number;
  server: grpc.Server;
  door: FrontDoor;
  port: number;
  hosts: string[];
  /** grpc-js's getPeer() of each Bidi call */
  peers: string[];
  logs: string[];
  mode: Mode;
  echo: DoorEcho;
}

function echoServer(hosts: string[], onCancel: () => void = () => undefined, peers: string[] = []): grpc.Server {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 8 << 20 });
  server.addService(ECHO, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      hosts.push(call.getHost());
      const tag = call.metadata.get('x-tag')[0];
      cb(null, tag ? Buffer.concat([Buffer.from(`${tag}:`), call.request]) : call.request);
    },
    Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      hosts.push(call.getHost());
      peers.push(call.getPeer());
      call.on('data', (d: Buffer) => call.write(d));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
      call.on('cancelled', onCancel);
    },
  });
  return server;
}

/**
 * Serves /test.Echo/Unary at the door (as UnaryFastPath serves KV calls), with grpc-js's echo semantics: the
 * x-tag metadata value and ':' before the payload. A tag of `slow-N` answers after N ms. Bidi stays with grpc-js.
 */
class DoorEcho implements SplitStreamHandler {
  served = 0;
  open(io: SplitStreamIo): SplitExchange | undefined {
    if (io.headers[':path'] !== '/test.Echo/Unary') return undefined;
    this.served++;
    if (io.headers['x-tag'] === 'refuse-at-once') {
      // as UnaryFastPath answers a bad grpc-timeout: before the request body is even read
      io.respondTrailersOnly([{ name: 'grpc-status', value: '3' }, { name: 'grpc-message', value: 'refused' }]);
    }
    const chunks: Buffer[] = [];
    return {
      data: (chunk) => chunks.push(chunk),
      aborted: () => undefined,
      end: () => {
        const body = Buffer.concat(chunks);
        if (body.length < 5 || body.length !== 5 + body.readUInt32BE(1)) {
          io.respondTrailersOnly([{ name: 'grpc-status', value: '13' }, { name: 'grpc-message', value: 'bad message' }]);
          return;
        }
        const payload = body.subarray(5);
        const tag = io.headers['x-tag'] as string | undefined;
        const answer = () => io.respond(tag ? Buffer.concat([Buffer.from(`${tag}:`), payload]) : Buffer.from(payload));
        const slow = /^slow-(\d+)$/.exec(tag ?? '');
        if (slow) setTimeout(answer, Number(slow[1]));
        else answer();
      },
    };
  }
}

type Mode = 'classic' | 'split';

/** Connections the door took over, whichever way it handles them. */
function expectConnections(h: Harness, counts: { fast: number; rewritten: number }): void {
  if (h.mode === 'split') expect(h.door.stats).toMatchObject<Partial<FrontDoorStats>>({ split: counts.fast + counts.rewritten, fast: 0, rewritten: 0 });
  else expect(h.door.stats).toMatchObject<Partial<FrontDoorStats>>(counts);
}

async function startHarness(opts: ConstructorParameters<typeof FrontDoor>[1] = {}, mode: Mode = 'classic'): Promise<Harness> {
  const hosts: string[] = [];
  const logs: string[] = [];
  const peers: string[] = [];
  const server = echoServer(hosts, () => h.cancelled++, peers);
  const echo = new DoorEcho();
  const door = new FrontDoor(withPeerAddresses(() => server.createConnectionInjector(grpc.ServerCredentials.createInsecure())), {
    log: (m) => logs.push(m),
    trace: (m) => logs.push(m),
    ...(mode === 'split' ? { streams: echo } : {}),
    ...opts,
  });
  const port = await door.listen('127.0.0.1', 0);
  const h: Harness = { server, door, port, hosts, peers, logs, cancelled: 0, mode, echo };
  return h;
}

async function stopHarness(h: Harness): Promise<void> {
  const closed = h.door.close();
  h.server.forceShutdown();
  await closed;
}

function client(port: number, authority?: string, target = `127.0.0.1:${port}`): Client {
  const options: grpc.ChannelOptions = authority ? { 'grpc.default_authority': authority } : {};
  return new EchoClient(target, grpc.credentials.createInsecure(), options) as Client;
}

function unary(c: Client, payload: string | Buffer, tag?: string): Promise<Buffer> {
  const md = new grpc.Metadata();
  if (tag) md.set('x-tag', tag);
  return new Promise((resolve, reject) =>
    c.Unary(Buffer.from(payload), md, { deadline: Date.now() + 10_000 }, (err: Error | null, res: Buffer) => (err ? reject(err) : resolve(res))),
  );
}

function bidi(c: Client, messages: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const got: string[] = [];
    const call = c.Bidi({ deadline: Date.now() + 10_000 });
    call.on('data', (d: Buffer) => got.push(d.toString()));
    call.on('error', reject);
    call.on('end', () => resolve(got));
    for (const m of messages) call.write(Buffer.from(m));
    call.end();
  });
}

/** Writes `data` to the port and resolves with everything read back once the server closes the socket. */
function rawExchange(port: number, data: Buffer | string, timeoutMs = 5000): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ reply: Buffer.concat(parts), closed: false });
    }, timeoutMs);
    socket.on('data', (d) => parts.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(parts), closed: true });
    });
    socket.write(data);
  });
}

/** A TCP relay that forwards client->server bytes in tiny pieces, to cut frames at every possible place. */
async function trickleProxy(targetPort: number, piece: number): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    sockets.add(down).add(up);
    let queue = Promise.resolve();
    down.on('data', (chunk: Buffer) => {
      queue = queue.then(async () => {
        for (let i = 0; i < chunk.length; i += piece) {
          up.write(chunk.subarray(i, i + piece));
          await new Promise((r) => setImmediate(r));
        }
      });
    });
    up.pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
    };
    for (const s of [up, down]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('the bug the front door fixes', () => {
  it('grpc-js (nghttp2) resets streams whose :authority is a URL', async () => {
    const server = echoServer([]);
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    const bogus = client(port, `http://127.0.0.1:${port}`);
    try {
      await expect(unary(bogus, 'x')).rejects.toThrow(/RST_STREAM with code 1\b/);
    } finally {
      bogus.close();
      server.forceShutdown();
    }
  });
});

// classic: grpc-js gets each connection (raw, or rewritten); split: the door serves Unary itself, grpc-js the rest.
describe.each<Mode>(['classic', 'split'])('FrontDoor (%s)', (mode) => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness({}, mode);
  });
  afterEach(async () => {
    await stopHarness(h);
  });

  it('serves a client with a URL authority (unary and bidi) and a normal client, concurrently', async () => {
    const bogus = client(h.port, `http://127.0.0.1:${h.port}`);
    const normal = client(h.port);
    try {
      const runs: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        runs.push(expect(unary(bogus, `b${i}`, `t${i}`)).resolves.toEqual(Buffer.from(`t${i}:b${i}`)));
        runs.push(expect(unary(normal, `n${i}`, `t${i}`)).resolves.toEqual(Buffer.from(`t${i}:n${i}`)));
      }
      runs.push(expect(bidi(bogus, ['a', 'b', 'c'])).resolves.toEqual(['a', 'b', 'c']));
      runs.push(expect(bidi(normal, ['d', 'e'])).resolves.toEqual(['d', 'e']));
      await Promise.all(runs);
      expectConnections(h, { fast: 1, rewritten: 1 });
      expect(new Set(h.hosts)).toEqual(new Set([`127.0.0.1:${h.port}`]));
      // the client's address, as grpc-js gives it to handlers (the certificate's user is looked up by it)
      for (const peer of h.peers) expect(peer).toMatch(/^(::ffff:)?127\.0\.0\.1:\d+$/);
      if (mode === 'split') expect(h.echo.served).toBe(40);
      expect(h.logs.some((l) => l.includes(`":authority" "http://127.0.0.1:${h.port}"`) || l.includes(`:authority "http://127.0.0.1:${h.port}"`))).toBe(true);
    } finally {
      bogus.close();
      normal.close();
    }
  });

  it('keeps a rewritten connection in sync over many header blocks (HPACK dynamic table)', async () => {
    const bogus = client(h.port, `http://127.0.0.1:${h.port}/some/path`);
    try {
      for (let i = 0; i < 200; i++) {
        // metadata that changes, repeats, and eventually pushes entries out of the client's dynamic table
        await expect(unary(bogus, 'p', `tag-${i % 7}-${'x'.repeat(i % 50)}`)).resolves.toEqual(Buffer.from(`tag-${i % 7}-${'x'.repeat(i % 50)}:p`));
        // and the blocks the server gets (re-encoded) stay in sync too
        if (i % 20 === 0) await expect(bidi(bogus, [`m${i}`])).resolves.toEqual([`m${i}`]);
      }
      expectConnections(h, { fast: 0, rewritten: 1 });
    } finally {
      bogus.close();
    }
  });

  it('leaks no socket: closed clients, fast or rewritten, leave no connection behind', async () => {
    const bogus = client(h.port, `http://127.0.0.1:${h.port}`);
    const normal = client(h.port);
    await unary(bogus, 'a');
    await unary(normal, 'b');
    expect(await h.door.connectionCount()).toBe(2);
    bogus.close();
    normal.close();
    await waitFor(async () => (await h.door.connectionCount()) === 0);
  });

  it('cancels server-side calls when a rewritten client vanishes', async () => {
    const proxy = await trickleProxy(h.port, 1 << 16);
    const bogus = client(proxy.port, `http://127.0.0.1:${h.port}`);
    try {
      const call = bogus.Bidi();
      call.on('error', () => undefined);
      call.write(Buffer.from('hi'));
      await new Promise((r) => call.once('data', r));
      expectConnections(h, { fast: 0, rewritten: 1 });
      await proxy.close(); // the TCP connection dies under both ends
      await waitFor(() => h.cancelled > 0);
      await waitFor(async () => (await h.door.connectionCount()) === 0);
    } finally {
      bogus.close();
    }
  });

  it('carries big messages both ways on a rewritten connection', async () => {
    const bogus = client(h.port, `http://127.0.0.1:${h.port}`);
    try {
      const big = Buffer.alloc(3 << 20, 7);
      big.write('head');
      // several at once, beside a stream: they share the connection's flow-control windows both ways
      const [res, res2, streamed] = await Promise.all([unary(bogus, big), unary(bogus, big, 't'), bidi(bogus, Array.from({ length: 20 }, (_, i) => `${i}`.repeat(50_000)))]);
      expect(res.length).toBe(big.length);
      expect(res.equals(big)).toBe(true);
      expect(res2.equals(Buffer.concat([Buffer.from('t:'), big]))).toBe(true);
      expect(streamed).toEqual(Array.from({ length: 20 }, (_, i) => `${i}`.repeat(50_000)));
    } finally {
      bogus.close();
    }
  });

  it('copes with bytes arriving in 1..7-byte pieces, on both paths', async () => {
    for (const piece of [1, 7]) {
      const proxy = await trickleProxy(h.port, piece);
      const bogus = client(proxy.port, `http://127.0.0.1:${h.port}`);
      const normal = client(proxy.port, undefined, `127.0.0.1:${proxy.port}`);
      try {
        await expect(unary(bogus, 'slow', 'a')).resolves.toEqual(Buffer.from('a:slow'));
        await expect(unary(normal, 'slow', 'b')).resolves.toEqual(Buffer.from('b:slow'));
        await expect(bidi(bogus, ['1', '2'])).resolves.toEqual(['1', '2']);
      } finally {
        bogus.close();
        normal.close();
        await proxy.close();
      }
    }
    expectConnections(h, { fast: 2, rewritten: 2 });
  });

  it('closes garbage connections and keeps serving the others', async () => {
    const normal = client(h.port);
    const bogus = client(h.port, `http://127.0.0.1:${h.port}`);
    try {
      await unary(normal, 'warm');
      await unary(bogus, 'warm');
      const garbage = await rawExchange(h.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01, 0x02]));
      expect(garbage).toEqual({ reply: Buffer.alloc(0), closed: true });
      // a broken HTTP/2 preface
      const badPreface = await rawExchange(h.port, 'PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n');
      expect(badPreface.closed).toBe(true);
      expect(badPreface.reply.toString()).not.toContain('HTTP/1.1');
      await expect(unary(normal, 'still')).resolves.toEqual(Buffer.from('still'));
      await expect(unary(bogus, 'here')).resolves.toEqual(Buffer.from('here'));
      expect(h.door.stats.rejected).toBe(2);
    } finally {
      normal.close();
      bogus.close();
    }
  });

  it('kills an HTTP/2 connection whose header blocks cannot be followed, and only that one', async () => {
    const normal = client(h.port);
    try {
      await unary(normal, 'warm');
      // preface, SETTINGS, then a HEADERS block with a URL authority, then a CONTINUATION out of place
      const { frame, H2_PREFACE, FrameType, FrameFlag } = await import('./front-door-h2');
      const { encodeStateless } = await import('./front-door-hpack');
      const block = encodeStateless([
        { name: ':method', value: 'POST' }, { name: ':scheme', value: 'http' }, { name: ':path', value: '/test.Echo/Unary' },
        { name: ':authority', value: 'http://x:1' }, { name: 'content-type', value: 'application/grpc' }, { name: 'te', value: 'trailers' },
      ]);
      const res = await rawExchange(h.port, Buffer.concat([
        H2_PREFACE, frame(FrameType.SETTINGS, 0, 0), frame(FrameType.SETTINGS, FrameFlag.ACK, 0),
        frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, block), frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, block),
      ]));
      expect(res.closed).toBe(true);
      expect(h.logs.some((l) => /CONTINUATION on stream 1 outside a header block/.test(l))).toBe(true);
      await expect(unary(normal, 'fine')).resolves.toEqual(Buffer.from('fine'));
    } finally {
      normal.close();
    }
  });

  it('answers HTTP/1.1 with a 404 and closes', async () => {
    const res = await rawExchange(h.port, 'GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(res.closed).toBe(true);
    expect(res.reply.toString()).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    expect(h.door.stats.http1).toBe(1);
  });

  it('answers PINGs before a first request', async () => {
    const { frame, H2_PREFACE, FrameType } = await import('./front-door-h2');
    const res = await rawExchange(
      h.port,
      Buffer.concat([H2_PREFACE, frame(FrameType.SETTINGS, 0, 0), frame(FrameType.PING, 0, 0, Buffer.from('12345678'))]),
      500,
    );
    const hex = res.reply.toString('hex');
    const pingAck = `000008060100000000${Buffer.from('12345678').toString('hex')}`;
    // classic: our empty SETTINGS, then the PING ACK; split: the server's own SETTINGS and ACK come between
    if (mode === 'classic') expect(hex).toBe(`000000040000000000${pingAck}`);
    else {
      expect(hex.startsWith('000000040000000000') && hex.includes(pingAck)).toBe(true);
      expect(hex.split(pingAck)).toHaveLength(2); // one answer: the door's, not the server's as well
      expect(h.door.stats.pingsAnswered).toBe(1);
    }
    expect(res.closed).toBe(false);
  });
});

interface RawCall {
  /** Reads the answer (not before: an unread answer holds back the client's flow-control credit). */
  read(): Promise<{ message: Buffer; grpcStatus?: string }>;
}

/** Starts one gRPC call over a raw node:http2 session. */
function startGrpc(session: http2.ClientHttp2Session, path: string, payload: Buffer, tag?: string): RawCall {
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...(tag ? { 'x-tag': tag } : {}) });
  let grpcStatus: string | undefined;
  let failed: Error | undefined;
  req.on('response', (h) => (grpcStatus ??= h['grpc-status'] as string | undefined)); // a trailers-only answer
  req.on('trailers', (t) => (grpcStatus = t['grpc-status'] as string));
  req.on('error', (err) => (failed = err));
  const framed = Buffer.alloc(5 + payload.length);
  framed.writeUInt32BE(payload.length, 1);
  payload.copy(framed, 5);
  req.end(framed);
  return {
    read: () =>
      new Promise((resolve, reject) => {
        if (failed) return reject(failed);
        const parts: Buffer[] = [];
        req.on('data', (d: Buffer) => parts.push(d));
        req.on('end', () => {
          const body = Buffer.concat(parts);
          resolve({ message: body.length >= 5 ? body.subarray(5, 5 + body.readUInt32BE(1)) : body, grpcStatus });
        });
        req.on('error', reject);
      }),
  };
}

/** One gRPC call over a raw node:http2 session: the answer's message and grpc-status as they came. */
function rawGrpc(session: http2.ClientHttp2Session, path: string, payload: Buffer, tag?: string): Promise<{ message: Buffer; grpcStatus?: string }> {
  return startGrpc(session, path, payload, tag).read();
}

describe('split connections', () => {
  let h: Harness;
  let session: http2.ClientHttp2Session | undefined;
  beforeEach(async () => {
    h = await startHarness({}, 'split');
  });
  afterEach(async () => {
    session?.destroy();
    await stopHarness(h);
  });

  it("a graceful shutdown lets the door's calls in flight answer, and the server's GOAWAY covers them", async () => {
    session = http2.connect(`http://127.0.0.1:${h.port}`);
    session.on('error', () => undefined);
    const goaways: number[] = [];
    session.on('goaway', (_code, last) => goaways.push(last));
    // stream 1 goes to grpc-js, stream 3 is served at the door and still running when the server shuts down
    await expect(rawGrpc(session, '/test.Echo/Bidi', Buffer.from('b'))).resolves.toEqual({ message: Buffer.from('b'), grpcStatus: '0' });
    const slow = rawGrpc(session, '/test.Echo/Unary', Buffer.from('u'), 'slow-300');
    await waitFor(() => h.echo.served === 1);
    const shutdown = new Promise<void>((r) => h.server.tryShutdown(() => r()));
    await expect(slow).resolves.toEqual({ message: Buffer.from('slow-300:u'), grpcStatus: '0' });
    await shutdown;
    // grpc-js only knew stream 1: a client told "last = 1" would take stream 3 for never processed (and retry it)
    expect(goaways.length).toBeGreaterThan(0);
    expect(Math.min(...goaways)).toBeGreaterThanOrEqual(3);
  });

  it('a call answered as it opens is over: a graceful shutdown does not wait for it', async () => {
    const { frame, H2_PREFACE, FrameType, FrameFlag } = await import('./front-door-h2');
    const { encodeStateless } = await import('./front-door-hpack');
    const block = encodeStateless([
      { name: ':method', value: 'POST' }, { name: ':scheme', value: 'http' }, { name: ':path', value: '/test.Echo/Unary' },
      { name: ':authority', value: `127.0.0.1:${h.port}` }, { name: 'content-type', value: 'application/grpc' }, { name: 'x-tag', value: 'refuse-at-once' },
    ]);
    // a raw client that never closes on its own: only the server's close ends the exchange
    const started = Date.now();
    const exchange = rawExchange(h.port, Buffer.concat([
      H2_PREFACE, frame(FrameType.SETTINGS, 0, 0), frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, block),
      frame(FrameType.DATA, FrameFlag.END_STREAM, 1, Buffer.from([0, 0, 0, 0, 1, 0x78])),
    ]), 3000);
    await waitFor(() => h.echo.served === 1);
    await new Promise<void>((r) => h.server.tryShutdown(() => r()));
    const { closed } = await exchange;
    expect(closed).toBe(true);
    // a call the connection still counted as in flight would hold its close for the 1 s grace
    expect(Date.now() - started).toBeLessThan(800);
  });

  it('takes padded HEADERS and DATA frames on both halves', async () => {
    session = http2.connect(`http://127.0.0.1:${h.port}`, { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX });
    session.on('error', () => undefined);
    const big = Buffer.alloc(100_000, 'p');
    await expect(rawGrpc(session, '/test.Echo/Unary', Buffer.from('x'), 't')).resolves.toEqual({ message: Buffer.from('t:x'), grpcStatus: '0' });
    await expect(rawGrpc(session, '/test.Echo/Unary', big)).resolves.toEqual({ message: big, grpcStatus: '0' });
    await expect(rawGrpc(session, '/test.Echo/Bidi', big)).resolves.toEqual({ message: big, grpcStatus: '0' });
    expect(h.echo.served).toBe(2);
  });

  it("shares the client's connection window with the server: DATA beyond the client's credit is held back", async () => {
    // A raw client that grants no credit beyond the initial 64 KiB: two 60 KB answers, ours and grpc-js's (which
    // cannot see ours and believes the whole window is its own), must not add up to more than the window.
    const { frame, H2_PREFACE, FrameType, FrameFlag } = await import('./front-door-h2');
    const { encodeStateless } = await import('./front-door-hpack');
    const payload = Buffer.alloc(60_000, 'w');
    const message = Buffer.concat([Buffer.from([0, 0, 0, 0xea, 0x60]), payload]);
    const request = (stream: number, path: string) => [
      frame(FrameType.HEADERS, FrameFlag.END_HEADERS, stream, encodeStateless([
        { name: ':method', value: 'POST' }, { name: ':scheme', value: 'http' }, { name: ':path', value: path },
        { name: ':authority', value: `127.0.0.1:${h.port}` }, { name: 'content-type', value: 'application/grpc' }, { name: 'te', value: 'trailers' },
      ])),
      frame(FrameType.DATA, 0, stream, message.subarray(0, 16384)),
      frame(FrameType.DATA, 0, stream, message.subarray(16384, 32768)),
      frame(FrameType.DATA, 0, stream, message.subarray(32768, 49152)),
      frame(FrameType.DATA, FrameFlag.END_STREAM, stream, message.subarray(49152)),
    ];
    const { reply } = await rawExchange(h.port, Buffer.concat([
      H2_PREFACE, frame(FrameType.SETTINGS, 0, 0), ...request(1, '/test.Echo/Unary'), ...request(3, '/test.Echo/Bidi'),
    ]), 1000);
    let pos = 0;
    const dataBytes = new Map<number, number>();
    while (pos + 9 <= reply.length) {
      const length = reply.readUIntBE(pos, 3);
      if (reply[pos + 3] === FrameType.DATA) {
        const stream = reply.readUInt32BE(pos + 5);
        dataBytes.set(stream, (dataBytes.get(stream) ?? 0) + length);
      }
      pos += 9 + length;
    }
    const total = [...dataBytes.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(60_005); // one answer whole, the other held back: its frames do not fit
    expect(total).toBeLessThanOrEqual(65_535); // all the credit there is
    expect(h.echo.served).toBe(1);
    expect(h.hosts).toHaveLength(1); // grpc-js had its call too
  });

  it('survives random frames (any type, flags, stream, payload) and keeps serving other connections', async () => {
    const { frame, H2_PREFACE, FrameType, FrameFlag } = await import('./front-door-h2');
    const { encodeStateless } = await import('./front-door-hpack');
    let seed = 0x2545f491;
    const rand = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const block = encodeStateless([
      { name: ':method', value: 'POST' }, { name: ':scheme', value: 'http' }, { name: ':path', value: '/test.Echo/Unary' },
      { name: ':authority', value: 'x:1' }, { name: 'content-type', value: 'application/grpc' },
    ]);
    const normal = client(h.port);
    try {
      for (let run = 0; run < 60; run++) {
        const frames = [H2_PREFACE, frame(FrameType.SETTINGS, 0, 0)];
        // mostly plausible frames (so that a sequence gets deep before something ends it), some of them malformed
        const kinds = [FrameType.DATA, FrameType.DATA, FrameType.HEADERS, FrameType.WINDOW_UPDATE, FrameType.RST_STREAM, FrameType.PRIORITY,
          FrameType.PING, FrameType.SETTINGS, FrameType.CONTINUATION, 0x20];
        for (let i = 0; i < 16; i++) {
          const type = kinds[rand(kinds.length)];
          const stream = rand(6) === 0 ? 0 : 1 + 2 * rand(4);
          const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => rand(256)));
          const sizes: Record<number, number> = { [FrameType.WINDOW_UPDATE]: 4, [FrameType.RST_STREAM]: 4, [FrameType.PRIORITY]: 5, [FrameType.PING]: 8, [FrameType.SETTINGS]: 6 };
          const malformed = rand(5) === 0;
          let payload: Buffer;
          let flags: number;
          if (type === FrameType.HEADERS && !malformed) {
            payload = block;
            flags = FrameFlag.END_HEADERS | (rand(2) ? FrameFlag.END_STREAM : 0);
          } else {
            payload = junk(malformed ? rand(12) : (sizes[type] ?? rand(40)));
            flags = type === FrameType.DATA ? (rand(2) ? FrameFlag.END_STREAM : 0) | (malformed ? FrameFlag.PADDED : 0) : malformed ? rand(256) : 0;
          }
          frames.push(frame(type, flags, stream, payload));
        }
        await rawExchange(h.port, Buffer.concat(frames), 100);
      }
      await expect(unary(normal, 'alive', 't')).resolves.toEqual(Buffer.from('t:alive'));
      await expect(bidi(normal, ['still'])).resolves.toEqual(['still']);
      expect(h.logs.filter((l) => /\n\s+at /.test(l))).toEqual([]); // no bug of ours (a stack) behind any closed connection
    } finally {
      normal.close();
    }
  });

  it('refuses a frame over 16 KiB (the frame size nobody raised) without buffering it', async () => {
    const { frameHeader, H2_PREFACE, frame, FrameType } = await import('./front-door-h2');
    const res = await rawExchange(h.port, Buffer.concat([H2_PREFACE, frame(FrameType.SETTINGS, 0, 0), frameHeader(1 << 20, FrameType.DATA, 0, 1)]), 2000);
    expect(res.closed).toBe(true);
    expect(h.logs.some((l) => /frame of 1048576 bytes/.test(l))).toBe(true);
  });

  it('drops answers to calls the client reset, and frames that arrive for them late', async () => {
    session = http2.connect(`http://127.0.0.1:${h.port}`);
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc', 'x-tag': 'slow-100' });
    req.on('error', () => undefined);
    req.end(Buffer.from([0, 0, 0, 0, 1, 0x61]));
    await waitFor(() => h.echo.served === 1);
    req.close(http2.constants.NGHTTP2_CANCEL);
    await new Promise((r) => setTimeout(r, 200)); // the handler answers the reset stream meanwhile
    await expect(rawGrpc(session, '/test.Echo/Unary', Buffer.from('after'))).resolves.toEqual({ message: Buffer.from('after'), grpcStatus: '0' });
    await expect(rawGrpc(session, '/test.Echo/Bidi', Buffer.from('still'))).resolves.toEqual({ message: Buffer.from('still'), grpcStatus: '0' });
  });
});

describe('fast path', () => {
  it("Node's http2 consumes the bytes the front door read and pushed back (socket.unshift)", async () => {
    // The fast decision is only taken once the first complete request header block has been read, so the
    // preface, SETTINGS and first HEADERS all reach the session through the socket's read buffer.
    const h2server = http2.createServer();
    const seen: string[] = [];
    h2server.on('stream', (stream, headers) => {
      seen.push(`${headers[':method']} ${headers[':path']} ${headers[':authority']}`);
      stream.respond({ ':status': 200 });
      stream.end('pong');
    });
    const door = new FrontDoor({ injectConnection: (c) => h2server.emit('connection', c) });
    const port = await door.listen('127.0.0.1', 0);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/ping' });
        let data = '';
        req.setEncoding('utf8');
        req.on('data', (d) => (data += d));
        req.on('end', () => resolve(data));
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe('pong');
      expect(seen).toEqual([`GET /ping 127.0.0.1:${port}`]);
      expect(door.stats).toMatchObject({ fast: 1, rewritten: 0 });
    } finally {
      session.destroy();
      const closed = door.close();
      h2server.close();
      await closed;
    }
  });
});

describe('FrontDoor options and shutdown', () => {
  it('hands HTTP/1.x to http1Handler with the bytes already read', async () => {
    const seen: string[] = [];
    const h = await startHarness({
      http1Handler: (socket, first) => {
        socket.unshift(first);
        socket.once('readable', () => {
          seen.push(String(socket.read()));
          socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
        });
      },
    });
    try {
      const res = await rawExchange(h.port, 'POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}');
      expect(res.reply.toString()).toMatch(/^HTTP\/1\.1 200 OK.*ok$/s);
      expect(seen[0]).toMatch(/^POST \/v3\/kv\/range HTTP\/1\.1\r\n/);
    } finally {
      await stopHarness(h);
    }
  });

  it('always-rewrite mode serves normal clients too', async () => {
    const h = await startHarness({ alwaysRewrite: true });
    const normal = client(h.port);
    try {
      await expect(unary(normal, 'x')).resolves.toEqual(Buffer.from('x'));
      await expect(bidi(normal, ['y'])).resolves.toEqual(['y']);
      expect(h.door.stats).toMatchObject({ fast: 0, rewritten: 1 });
    } finally {
      normal.close();
      await stopHarness(h);
    }
  });

  it('close() drops undecided connections, and a graceful grpc shutdown covers injected ones', async () => {
    const h = await startHarness();
    const bogus = client(h.port, `http://127.0.0.1:${h.port}`);
    const normal = client(h.port);
    await unary(bogus, 'a');
    await unary(normal, 'b');
    const idle = net.connect(h.port, '127.0.0.1');
    idle.on('error', () => undefined);
    const idleClosed = new Promise((r) => idle.on('close', r));
    await new Promise((r) => idle.once('connect', r));
    await new Promise((r) => setTimeout(r, 20));
    const closed = h.door.close();
    await idleClosed;
    await new Promise<void>((r) => h.server.tryShutdown(() => r()));
    await closed; // every socket, fast or rewritten, is gone
    bogus.close();
    normal.close();
  });

  it('sniffs HTTP/1 request lines', () => {
    expect(sniffHttp1(Buffer.from('GET / HTTP/1.1'))).toBe('yes');
    expect(sniffHttp1(Buffer.from('GE'))).toBe('maybe');
    expect(sniffHttp1(Buffer.from('\x16\x03'))).toBe('no');
    expect(sniffHttp1(Buffer.from('get / HTTP/1.1'))).toBe('no');
    expect(sniffHttp1(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX'))).toBe('no'); // a broken HTTP/2 preface
  });
});
