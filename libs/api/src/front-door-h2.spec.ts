import {
  EMPTY_SETTINGS,
  frame,
  FrameFlag,
  frameHeaderBlock,
  FrameType,
  H2_PREFACE,
  H2PreambleAnalyzer,
  H2ProtocolError,
  H2RequestRewriter,
  parseHeadersPayload,
  PreambleDecision,
} from './front-door-h2';
import { encodeInt, encodeStateless, HeaderField, HpackDecoder, huffmanEncode, STATIC_TABLE } from './front-door-hpack';

/**
 * A stateful HPACK encoder as a real client has: incremental indexing of everything, references to dynamic
 * entries in later blocks, Huffman strings, an optional table size update at the start of a block.
 */
class TestEncoder {
  private table: Array<[string, string]> = []; // newest first
  private size = 0;
  constructor(private maxSize = 4096) {}

  encode(fields: Array<[string, string]>, sizeUpdate?: number): Buffer {
    const out: number[] = [];
    if (sizeUpdate !== undefined) {
      encodeInt(out, 0x20, 5, sizeUpdate);
      this.maxSize = sizeUpdate;
      this.evict(0);
    }
    for (const [name, value] of fields) {
      const dyn = this.table.findIndex(([n, v]) => n === name && v === value);
      const stat = STATIC_TABLE.findIndex(([n, v]) => n === name && v === value);
      if (stat >= 0) encodeInt(out, 0x80, 7, stat + 1);
      else if (dyn >= 0) encodeInt(out, 0x80, 7, STATIC_TABLE.length + dyn + 1);
      else {
        const nameStat = STATIC_TABLE.findIndex(([n]) => n === name);
        const nameDyn = this.table.findIndex(([n]) => n === name);
        if (nameStat >= 0) encodeInt(out, 0x40, 6, nameStat + 1);
        else if (nameDyn >= 0) encodeInt(out, 0x40, 6, STATIC_TABLE.length + nameDyn + 1);
        else {
          out.push(0x40);
          this.str(out, name);
        }
        this.str(out, value);
        const entry = name.length + value.length + 32;
        this.evict(entry);
        if (entry <= this.maxSize) {
          this.table.unshift([name, value]);
          this.size += entry;
        }
      }
    }
    return Buffer.from(out);
  }

  private str(out: number[], s: string): void {
    const h = huffmanEncode(s);
    encodeInt(out, 0x80, 7, h.length);
    out.push(...h);
  }

  private evict(room: number): void {
    while (this.table.length && this.size + room > this.maxSize) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}

const request = (authority: string, extra: Array<[string, string]> = []): Array<[string, string]> => [
  [':method', 'POST'], [':scheme', 'http'], [':path', '/etcdserverpb.Maintenance/Status'], [':authority', authority],
  ['content-type', 'application/grpc'], ['user-agent', 'grpc-go/1.26.0'], ['te', 'trailers'], ...extra,
];

/** Parses a server-bound byte stream back into frames, decoding header blocks with a fresh server-side decoder. */
function parseServerSide(bytes: Buffer): { frames: Array<{ type: number; flags: number; stream: number; payload: Buffer }>; blocks: HeaderField[][]; decoder: HpackDecoder } {
  expect(bytes.subarray(0, 24)).toEqual(H2_PREFACE);
  const frames: Array<{ type: number; flags: number; stream: number; payload: Buffer }> = [];
  const blocks: HeaderField[][] = [];
  const decoder = new HpackDecoder();
  let pending: Buffer[] = [];
  for (let pos = 24; pos < bytes.length;) {
    const len = bytes.readUIntBE(pos, 3);
    const f = { type: bytes[pos + 3], flags: bytes[pos + 4], stream: bytes.readUInt32BE(pos + 5), payload: bytes.subarray(pos + 9, pos + 9 + len) };
    expect(f.payload.length).toBe(len);
    expect(len).toBeLessThanOrEqual(16384);
    frames.push(f);
    pos += 9 + len;
    if (f.type === FrameType.HEADERS) pending = [parseHeadersPayload(f.flags, f.payload).fragment];
    if (f.type === FrameType.CONTINUATION) pending.push(f.payload);
    if ((f.type === FrameType.HEADERS || f.type === FrameType.CONTINUATION) && f.flags & FrameFlag.END_HEADERS) {
      blocks.push(decoder.decode(Buffer.concat(pending)));
    }
  }
  return { frames, blocks, decoder };
}

const pairs = (fields: HeaderField[]) => fields.map((f) => [f.name, f.value]);

/** Feeds `input` to a new rewriter cut at the given offsets; returns the concatenated output. */
function rewriteInPieces(input: Buffer, cuts: number[], opts: Partial<ConstructorParameters<typeof H2RequestRewriter>[0]> = {}): Buffer {
  const rw = new H2RequestRewriter({ fallbackAuthority: '127.0.0.1:2379', ...opts });
  const out: Buffer[] = [];
  let prev = 0;
  for (const cut of [...cuts, input.length]) {
    out.push(...rw.write(input.subarray(prev, cut)));
    prev = cut;
  }
  return Buffer.concat(out);
}

describe('H2RequestRewriter', () => {
  const enc = new TestEncoder();
  const b1 = enc.encode(request('http://127.0.0.1:12379'));
  const b2 = enc.encode(request('http://127.0.0.1:12379', [['x-tag', 'again']])); // mostly dynamic-table references
  const b3 = enc.encode([['grpc-status', '0']]); // a trailer-like block
  const data = Buffer.alloc(40000, 0xab);
  const padded = (flags: number, priority: Buffer | null, frag: Buffer, pad: number): Buffer => {
    const parts: Buffer[] = [Buffer.from([pad])];
    if (priority) parts.push(priority);
    parts.push(frag, Buffer.alloc(pad));
    return Buffer.concat(parts);
  };
  const prio = Buffer.from([0x80, 0, 0, 0, 15]); // exclusive dependency on stream 0, weight 16
  const input = Buffer.concat([
    H2_PREFACE,
    frame(FrameType.SETTINGS, 0, 0, Buffer.from('000300000064', 'hex')),
    frame(FrameType.SETTINGS, FrameFlag.ACK, 0), // the ACK of the front door's SETTINGS
    frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from('00ff0000', 'hex')),
    // block 1: HEADERS (padded, with priority) + CONTINUATION + CONTINUATION
    frame(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.PRIORITY, 1, padded(0, prio, b1.subarray(0, 10), 7)),
    frame(FrameType.CONTINUATION, 0, 1, b1.subarray(10, 20)),
    frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, b1.subarray(20)),
    // a big DATA payload in several frames, one padded
    frame(FrameType.DATA, 0, 1, data.subarray(0, 16384)),
    frame(FrameType.DATA, FrameFlag.PADDED, 1, Buffer.concat([Buffer.from([3]), data.subarray(16384, 30000), Buffer.alloc(3)])),
    frame(FrameType.DATA, FrameFlag.END_STREAM, 1, data.subarray(30000)),
    frame(FrameType.PING, 0, 0, Buffer.from('pingpong')),
    // block 2 on stream 3, END_STREAM, padded only
    frame(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.END_STREAM | FrameFlag.END_HEADERS, 3, padded(0, null, b2, 200)),
    frame(FrameType.PRIORITY, 0, 5, Buffer.from([0, 0, 0, 3, 7])),
    frame(FrameType.RST_STREAM, 0, 3, Buffer.from('00000008', 'hex')),
    frame(FrameType.SETTINGS, FrameFlag.ACK, 0), // the ACK of the server's own SETTINGS: must stay
    frame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.END_STREAM, 1, b3),
    frame(FrameType.GOAWAY, 0, 0, Buffer.from('0000000300000000', 'hex')),
  ]);

  function check(output: Buffer): void {
    const { frames, blocks, decoder } = parseServerSide(output);
    expect(blocks.map(pairs)).toEqual([
      request('127.0.0.1:12379'),
      request('127.0.0.1:12379', [['x-tag', 'again']]),
      [['grpc-status', '0']],
    ]);
    expect(decoder.tableLength).toBe(0); // stateless: the server's table never fills
    const types = frames.map((f) => f.type);
    expect(types).toEqual([
      FrameType.SETTINGS, FrameType.WINDOW_UPDATE, FrameType.HEADERS, FrameType.DATA, FrameType.DATA, FrameType.DATA, FrameType.PING,
      FrameType.HEADERS, FrameType.PRIORITY, FrameType.RST_STREAM, FrameType.SETTINGS, FrameType.HEADERS, FrameType.GOAWAY,
    ]);
    const [h1, h2, h3] = frames.filter((f) => f.type === FrameType.HEADERS);
    expect(h1.flags).toBe(FrameFlag.PRIORITY | FrameFlag.END_HEADERS); // priority kept, padding gone
    expect(h1.payload.subarray(0, 5)).toEqual(prio);
    expect(h2.flags).toBe(FrameFlag.END_STREAM | FrameFlag.END_HEADERS);
    expect(h3).toMatchObject({ flags: FrameFlag.END_STREAM | FrameFlag.END_HEADERS, stream: 1 });
    // every other frame is passed through byte for byte
    const dataOut = Buffer.concat(frames.filter((f) => f.type === FrameType.DATA).map((f) => f.payload));
    expect(dataOut).toEqual(Buffer.concat([data.subarray(0, 16384), Buffer.from([3]), data.subarray(16384, 30000), Buffer.alloc(3), data.subarray(30000)]));
    expect(frames[frames.length - 1].payload).toEqual(Buffer.from('0000000300000000', 'hex'));
  }

  it('re-encodes every header block (padding, priority, continuation, dynamic table references) and passes the rest', () => {
    check(rewriteInPieces(input, [], { dropFirstSettingsAck: true }));
  });

  it('gives the same bytes however the input is cut', () => {
    const whole = rewriteInPieces(input, [], { dropFirstSettingsAck: true });
    const same = (cuts: number[]) => rewriteInPieces(input, cuts, { dropFirstSettingsAck: true }).equals(whole);
    const bad: number[] = [];
    for (let cut = 1; cut < input.length; cut += cut < 400 ? 1 : 97) if (!same([cut])) bad.push(cut);
    expect(bad).toEqual([]);
    expect(same(Array.from({ length: input.length - 1 }, (_, i) => i + 1))).toBe(true); // one byte at a time
    for (let step = 2; step < 40; step += 3) {
      const cuts = Array.from({ length: Math.floor(input.length / step) }, (_, i) => (i + 1) * step).filter((c) => c < input.length);
      expect(same(cuts)).toBe(true);
    }
  });

  it('passes chunks without header blocks through as the same buffer', () => {
    const rw = new H2RequestRewriter({ fallbackAuthority: 'x:1' });
    rw.write(H2_PREFACE);
    const chunk = Buffer.concat([frame(FrameType.DATA, 0, 1, data.subarray(0, 1000)), frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from('00000100', 'hex'))]);
    const out = rw.write(chunk);
    expect(out).toHaveLength(1);
    expect(out[0]).toBe(chunk);
  });

  it('keeps the first SETTINGS ACK unless told to drop it', () => {
    const out = rewriteInPieces(Buffer.concat([H2_PREFACE, frame(FrameType.SETTINGS, FrameFlag.ACK, 0), frame(FrameType.SETTINGS, FrameFlag.ACK, 0)]), []);
    expect(parseServerSide(out).frames).toHaveLength(2);
    const dropped = rewriteInPieces(Buffer.concat([H2_PREFACE, frame(FrameType.SETTINGS, FrameFlag.ACK, 0), frame(FrameType.SETTINGS, FrameFlag.ACK, 0)]), [], { dropFirstSettingsAck: true });
    expect(parseServerSide(dropped).frames).toHaveLength(1);
  });

  it('splits a re-encoded block bigger than 16384 bytes into CONTINUATION frames', () => {
    const e = new TestEncoder();
    const big = 'v'.repeat(40000);
    const block = e.encode(request('http://h:1', [['x-big', big]]));
    const input2 = Buffer.concat([H2_PREFACE, ...frameHeaderBlock(1, block, true)]);
    const seen: string[] = [];
    const out = rewriteInPieces(input2, [100, 20000], { onRewrite: (n, from, to) => seen.push(`${n} ${from} -> ${to}`) });
    const { frames, blocks } = parseServerSide(out);
    expect(frames.map((f) => f.type)).toEqual([FrameType.HEADERS, FrameType.CONTINUATION, FrameType.CONTINUATION]);
    expect(frames.map((f) => f.flags)).toEqual([FrameFlag.END_STREAM, 0, FrameFlag.END_HEADERS]);
    expect(pairs(blocks[0])).toContainEqual(['x-big', big]);
    expect(pairs(blocks[0])).toContainEqual([':authority', 'h:1']);
    expect(seen).toEqual([':authority http://h:1 -> h:1']);
  });

  it('repairs an authority each time it is sent, also as an index into the dynamic table', () => {
    const e = new TestEncoder();
    const first = e.encode(request('http://h:1'));
    const again = e.encode(request('http://h:1')); // every field now an index: the rewrite must not have changed the table
    expect(again.length).toBeLessThan(first.length / 4);
    const input = Buffer.concat([H2_PREFACE, frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, first), frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 3, again)]);
    const seen: string[] = [];
    const { blocks } = parseServerSide(rewriteInPieces(input, [], { onRewrite: (n, from, to) => seen.push(`${n} ${from} -> ${to}`) }));
    expect(blocks.map((b) => pairs(b).find(([n]) => n === ':authority'))).toEqual([[':authority', 'h:1'], [':authority', 'h:1']]);
    expect(seen).toEqual([':authority http://h:1 -> h:1', ':authority http://h:1 -> h:1']);
  });

  it('repairs host as well, and leaves valid authorities alone', () => {
    const e = new TestEncoder();
    const block1 = e.encode(request('127.0.0.1:2379', [['host', 'unix:///tmp/sock']]));
    const out = rewriteInPieces(Buffer.concat([H2_PREFACE, frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, block1)]), []);
    expect(pairs(parseServerSide(out).blocks[0])).toEqual(request('127.0.0.1:2379', [['host', '127.0.0.1:2379']]));
  });

  it('follows dynamic table size updates and evictions in the client encoder', () => {
    const e = new TestEncoder(256);
    const blocks = [
      e.encode(request('http://a:1'), 256),
      e.encode(request('http://a:1', [['x-1', 'y'.repeat(100)]])),
      e.encode(request('http://a:1', [['x-2', 'z'.repeat(150)]])), // evicts
      e.encode(request('http://a:1'), 0), // empties the table
      e.encode(request('http://a:1'), 4096),
      e.encode(request('http://a:1')),
    ];
    const input3 = Buffer.concat([H2_PREFACE, ...blocks.map((b, i) => frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 2 * i + 1, b))]);
    const got = parseServerSide(rewriteInPieces(input3, [50, 51, 300])).blocks.map(pairs);
    expect(got).toEqual([
      request('a:1'), request('a:1', [['x-1', 'y'.repeat(100)]]), request('a:1', [['x-2', 'z'.repeat(150)]]), request('a:1'), request('a:1'), request('a:1'),
    ]);
  });

  it('refuses streams it cannot follow', () => {
    const block = encodeStateless([{ name: ':authority', value: 'http://x' }]);
    const bad = (...frames: Buffer[]) => () => rewriteInPieces(Buffer.concat([H2_PREFACE, ...frames]), []);
    expect(bad(frame(FrameType.HEADERS, 0, 1, block), frame(FrameType.DATA, 0, 1, Buffer.from('x')))).toThrow(H2ProtocolError);
    expect(bad(frame(FrameType.HEADERS, 0, 1, block), frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 3, block))).toThrow(/expected CONTINUATION on stream 1/);
    expect(bad(frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, block))).toThrow(/outside a header block/);
    expect(bad(frame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.PADDED, 1, Buffer.from([200, 1, 2])))).toThrow(/padding/);
    expect(bad(frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, Buffer.from([0x80])))).toThrow(/index 0/);
    expect(bad(frame(FrameType.HEADERS, 0, 1, Buffer.alloc(100)))).not.toThrow(); // incomplete block: waits
    const rw = new H2RequestRewriter({ fallbackAuthority: 'x:1', maxHeaderBlockBytes: 1000 });
    rw.write(H2_PREFACE);
    rw.write(frame(FrameType.HEADERS, 0, 1, Buffer.alloc(900)));
    expect(() => rw.write(frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(200)))).toThrow(/header block over 1000/);
  });
});

describe('H2PreambleAnalyzer', () => {
  function feed(chunks: Buffer[], maxBytes?: number): { decisions: PreambleDecision[]; replies: Buffer[] } {
    const replies: Buffer[] = [];
    const a = new H2PreambleAnalyzer((b) => replies.push(b), maxBytes);
    const decisions = chunks.map((c) => a.push(c));
    return { decisions, replies };
  }
  const headers = (authority: string, flags = FrameFlag.END_HEADERS) => frame(FrameType.HEADERS, flags, 1, new TestEncoder().encode(request(authority)));
  const settings = frame(FrameType.SETTINGS, 0, 0, Buffer.from('000400010000', 'hex'));
  const ack = frame(FrameType.SETTINGS, FrameFlag.ACK, 0);

  it('takes the fast path for a valid authority once our SETTINGS is acknowledged, without that ACK', () => {
    const hdr = headers('127.0.0.1:2379');
    const { decisions } = feed([Buffer.concat([H2_PREFACE, settings]), hdr, ack]);
    expect(decisions.map((d) => d.kind)).toEqual(['more', 'more', 'fast']);
    expect((decisions[2] as { buffered: Buffer }).buffered).toEqual(Buffer.concat([H2_PREFACE, settings, hdr]));
  });

  it('grpc-go order: ACK first, then the request', () => {
    const hdr = headers('127.0.0.1:2379');
    const { decisions } = feed([Buffer.concat([H2_PREFACE, EMPTY_SETTINGS]), Buffer.concat([ack, hdr])]);
    expect(decisions[1]).toEqual({ kind: 'fast', buffered: Buffer.concat([H2_PREFACE, EMPTY_SETTINGS, hdr]) });
  });

  it('chooses rewriting for a URL authority, at once, remembering whether the ACK is still to come', () => {
    const hdr = headers('http://127.0.0.1:2379');
    const early = feed([Buffer.concat([H2_PREFACE, settings, hdr])]).decisions[0];
    expect(early).toMatchObject({ kind: 'rewrite', ackPending: true, reason: ':authority "http://127.0.0.1:2379"' });
    const late = feed([Buffer.concat([H2_PREFACE, settings, ack, hdr])]).decisions[0];
    expect(late).toMatchObject({ kind: 'rewrite', ackPending: false, buffered: Buffer.concat([H2_PREFACE, settings, hdr]) });
  });

  it('waits for CONTINUATION frames, and handles padding and priority', () => {
    const block = new TestEncoder().encode(request('http://x:1'));
    const first = frame(FrameType.HEADERS, FrameFlag.PADDED | FrameFlag.PRIORITY, 1, Buffer.concat([Buffer.from([4]), Buffer.from([0, 0, 0, 0, 9]), block.subarray(0, 5), Buffer.alloc(4)]));
    const cont = frame(FrameType.CONTINUATION, FrameFlag.END_HEADERS, 1, block.subarray(5));
    const { decisions } = feed([Buffer.concat([H2_PREFACE, ack]), first, cont.subarray(0, 4), cont.subarray(4)]);
    expect(decisions.map((d) => d.kind)).toEqual(['more', 'more', 'more', 'rewrite']);
  });

  it('answers PINGs and keeps them from the server', () => {
    const ping = frame(FrameType.PING, 0, 0, Buffer.from('abcdefgh'));
    const { decisions, replies } = feed([Buffer.concat([H2_PREFACE, settings, ping, ack]), headers('a:1')]);
    expect(replies).toEqual([frame(FrameType.PING, FrameFlag.ACK, 0, Buffer.from('abcdefgh'))]);
    expect(decisions[1]).toEqual({ kind: 'fast', buffered: Buffer.concat([H2_PREFACE, settings, headers('a:1')]) });
  });

  it('gives up looking after maxBytes and rewrites', () => {
    const win = frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from('00000001', 'hex'));
    const { decisions } = feed([H2_PREFACE, ...Array.from({ length: 10 }, () => win)], 100);
    expect(decisions.map((d) => d.kind).slice(0, 6)).toEqual(['more', 'more', 'more', 'more', 'more', 'more']);
    expect(decisions[6]).toMatchObject({ kind: 'rewrite', ackPending: true });
  });

  it('leaves an undecodable first block to the server', () => {
    const { decisions } = feed([Buffer.concat([H2_PREFACE, frame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, Buffer.from([0x80]))])]);
    expect(decisions[0].kind).toBe('fast');
  });
});
