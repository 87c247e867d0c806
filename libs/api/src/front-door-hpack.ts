/**
 * Just enough HPACK (RFC 7541) for the client-port front door: a complete decoder (dynamic table,
 * size updates, Huffman) that mirrors a client's encoder, and a stateless encoder that never touches
 * the dynamic table, so re-encoded header blocks cannot desynchronise the server's decoder.
 *
 * Header names and values are carried as latin1 strings: one char per octet, so decode/encode is lossless.
 */

const EMPTY_BLOCK = Buffer.alloc(0);

export class HpackError extends Error {
  override readonly name = 'HpackError';
}

export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "literal never indexed": an intermediary must re-encode it the same way (RFC 7541 §6.2.3). */
  neverIndex?: boolean;
}

/** RFC 7541 Appendix A. */
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

const STATIC_NAME_INDEX = new Map<string, number>();
const STATIC_PAIR_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
  if (value !== '') STATIC_PAIR_INDEX.set(`${name}\0${value}`, i + 1);
});

/**
 * RFC 7541 Appendix B code lengths for symbols 0..256 (256 = EOS). The code is canonical (codes are
 * assigned in order of (length, symbol)), so the lengths alone determine every code.
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28,
  28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12,
  10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6,
  5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22,
  22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20,
  22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28,
  27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28,
  27, 27, 27, 27, 27, 26, 30,
];
const EOS = 256;

/** Canonical codes for each symbol, rebuilt from the lengths. */
const HUFFMAN_CODES: number[] = (() => {
  const codes = new Array<number>(HUFFMAN_LENGTHS.length).fill(0);
  const order = HUFFMAN_LENGTHS.map((_, s) => s).sort((a, b) => HUFFMAN_LENGTHS[a] - HUFFMAN_LENGTHS[b] || a - b);
  let code = 0;
  let prevLen = HUFFMAN_LENGTHS[order[0]];
  for (const s of order) {
    code *= 2 ** (HUFFMAN_LENGTHS[s] - prevLen); // may exceed 2^31: no bit shifts
    prevLen = HUFFMAN_LENGTHS[s];
    codes[s] = code;
    code += 1;
  }
  return codes;
})();

/**
 * Decoding tree: node n has children tree[2n] (bit 0) and tree[2n+1] (bit 1); a child value > 0 is another
 * node, a value < 0 is a leaf for symbol -(value + 1), 0 means "no code here".
 */
const HUFFMAN_TREE: Int32Array = (() => {
  const tree = new Int32Array(2 * 2 * HUFFMAN_LENGTHS.length);
  let nodes = 1;
  HUFFMAN_LENGTHS.forEach((len, sym) => {
    const code = HUFFMAN_CODES[sym];
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const bit = Math.floor(code / 2 ** i) & 1;
      const slot = 2 * node + bit;
      if (i === 0) {
        tree[slot] = -(sym + 1);
      } else {
        if (tree[slot] === 0) tree[slot] = nodes++;
        node = tree[slot];
      }
    }
  });
  return tree;
})();

/** where huffmanDecode writes the octets before they become a string (decoding is synchronous: one is enough) */
const huffmanScratch = Buffer.allocUnsafeSlow(4096);

/** The string Huffman-coded in src[start, end). */
export function huffmanDecode(src: Buffer, start = 0, end = src.length): string {
  const room = Math.ceil(((end - start) * 8) / 5); // shortest code is 5 bits
  // an outsized string (a header block may be 1 MiB) gets a buffer of its own rather than one kept for good
  const out = room <= huffmanScratch.length ? huffmanScratch : Buffer.allocUnsafe(room);
  let n = 0;
  let node = 0;
  let pendingBits = 0; // bits read since the last complete symbol
  let pendingAllOnes = true;
  for (let i = start; i < end; i++) {
    const byte = src[i];
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >> b) & 1;
      const next = HUFFMAN_TREE[2 * node + bit];
      pendingBits++;
      if (bit === 0) pendingAllOnes = false;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === EOS) throw new HpackError('huffman: EOS symbol in string');
        out[n++] = sym;
        node = 0;
        pendingBits = 0;
        pendingAllOnes = true;
      } else if (next === 0) {
        throw new HpackError('huffman: invalid code');
      } else {
        node = next;
      }
    }
  }
  // Padding must be a prefix of EOS (all ones) and shorter than 8 bits (RFC 7541 §5.2).
  if (pendingBits > 7 || !pendingAllOnes) throw new HpackError('huffman: invalid padding');
  return out.toString('latin1', 0, n);
}

export function huffmanEncode(s: string): Buffer {
  const src = Buffer.from(s, 'latin1');
  const bytes: number[] = [];
  let acc = 0; // pending bits, < 8 of them
  let accBits = 0;
  for (const sym of src) {
    const len = HUFFMAN_LENGTHS[sym];
    const code = HUFFMAN_CODES[sym];
    for (let i = len - 1; i >= 0; i--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** i) & 1);
      if (++accBits === 8) {
        bytes.push(acc);
        acc = 0;
        accBits = 0;
      }
    }
  }
  if (accBits > 0) bytes.push(((acc << (8 - accBits)) | (0xff >> accBits)) & 0xff);
  return Buffer.from(bytes);
}

/** Appends an HPACK integer with an N-bit prefix; `first` holds the representation's flag bits. */
export function encodeInt(out: number[], first: number, prefixBits: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

function encodeRawString(out: number[], s: string): void {
  encodeInt(out, 0, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * Encodes a header list without using or changing the dynamic table: fully indexed static pairs (e.g.
 * `:method: POST`), otherwise "literal without indexing" (or "never indexed" when the field was) with a
 * static name index when there is one. Strings are sent raw (no Huffman): cheaper to produce, a few bytes more.
 */
export function encodeStateless(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const f of fields) {
    if (!f.neverIndex) {
      const pair = STATIC_PAIR_INDEX.get(`${f.name}\0${f.value}`);
      if (pair !== undefined) {
        encodeInt(out, 0x80, 7, pair);
        continue;
      }
    }
    const flag = f.neverIndex ? 0x10 : 0x00;
    const nameIndex = STATIC_NAME_INDEX.get(f.name);
    if (nameIndex !== undefined) {
      encodeInt(out, flag, 4, nameIndex);
    } else {
      out.push(flag);
      encodeRawString(out, f.name);
    }
    encodeRawString(out, f.value);
  }
  return Buffer.from(out);
}

/**
 * A decoded field. The decoder hands out the same object for every use of a table entry (a gRPC client sends
 * most of its headers as table indexes), so fields are read-only: replace one, never change it.
 */
export type DecodedField = Readonly<HeaderField>;

const STATIC_FIELDS: readonly DecodedField[] = STATIC_TABLE.map(([name, value]) => ({ name, value }));

/** A decoder whose dynamic table mirrors the peer encoder's; feed it every header block of a connection, in order. */
export class HpackDecoder {
  /** Oldest first: dynamic index 1 is the last element. */
  private readonly entries: DecodedField[] = [];
  private head = 0; // entries[head..] are live; evicted ones are dropped lazily
  private size = 0;
  private maxSize: number;
  // the block being decoded, and where in it: fields rather than closures, so a decode allocates only its output
  private block: Buffer = EMPTY_BLOCK;
  private pos = 0;

  /**
   * @param sizeLimit the SETTINGS_HEADER_TABLE_SIZE the decoder side allows: the initial table size and the
   *   upper bound for the encoder's dynamic table size updates.
   */
  constructor(private readonly sizeLimit = 4096) {
    this.maxSize = sizeLimit;
  }

  get tableSize(): number {
    return this.size;
  }

  get tableLength(): number {
    return this.entries.length - this.head;
  }

  decode(block: Buffer): DecodedField[] {
    this.block = block;
    this.pos = 0;
    try {
      return this.decodeFields();
    } finally {
      this.block = EMPTY_BLOCK;
    }
  }

  private decodeFields(): DecodedField[] {
    const block = this.block;
    const fields: DecodedField[] = [];
    let sizeUpdateAllowed = true; // only at the start of a block (RFC 7541 §4.2)
    while (this.pos < block.length) {
      const b = block[this.pos];
      if (b & 0x80) {
        fields.push(this.lookup(this.readInt(7)));
        sizeUpdateAllowed = false;
      } else if (b & 0x40) {
        const index = this.readInt(6);
        const name = index === 0 ? this.readString() : this.lookup(index).name;
        const field = { name, value: this.readString() };
        fields.push(field);
        this.add(field);
        sizeUpdateAllowed = false;
      } else if (b & 0x20) {
        const size = this.readInt(5);
        if (!sizeUpdateAllowed) throw new HpackError('dynamic table size update after a header field');
        if (size > this.sizeLimit) throw new HpackError(`dynamic table size ${size} over the limit ${this.sizeLimit}`);
        this.maxSize = size;
        this.evict(0);
      } else {
        const neverIndex = (b & 0x10) !== 0;
        const index = this.readInt(4);
        const name = index === 0 ? this.readString() : this.lookup(index).name;
        const value = this.readString();
        fields.push(neverIndex ? { name, value, neverIndex } : { name, value });
        sizeUpdateAllowed = false;
      }
    }
    return fields;
  }

  private readInt(prefixBits: number): number {
    const block = this.block;
    const max = (1 << prefixBits) - 1;
    let value = block[this.pos++] & max;
    if (value < max) return value;
    let shift = 1;
    for (;;) {
      if (this.pos >= block.length) throw new HpackError('truncated integer');
      const b = block[this.pos++];
      value += (b & 0x7f) * shift;
      if (value > 0x7fffffff) throw new HpackError('integer overflow');
      if ((b & 0x80) === 0) return value;
      shift *= 128;
    }
  }

  private readString(): string {
    const block = this.block;
    if (this.pos >= block.length) throw new HpackError('truncated string');
    const huffman = (block[this.pos] & 0x80) !== 0;
    const len = this.readInt(7);
    if (len > block.length - this.pos) throw new HpackError('string longer than header block');
    const start = this.pos;
    this.pos += len;
    return huffman ? huffmanDecode(block, start, start + len) : block.toString('latin1', start, start + len);
  }

  private lookup(index: number): DecodedField {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_FIELDS.length) return STATIC_FIELDS[index - 1];
    const d = index - STATIC_FIELDS.length;
    if (d > this.entries.length - this.head) throw new HpackError(`index ${index} beyond the dynamic table`);
    return this.entries[this.entries.length - d];
  }

  private add(field: DecodedField): void {
    const entrySize = field.name.length + field.value.length + 32;
    if (entrySize > this.maxSize) {
      this.entries.length = 0;
      this.head = 0;
      this.size = 0;
      return;
    }
    this.evict(entrySize);
    this.entries.push(field);
    this.size += entrySize;
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.head < this.entries.length) {
      const e = this.entries[this.head++];
      this.size -= e.name.length + e.value.length + 32;
    }
    if (this.head > 64 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** The octets nghttp2 accepts in :authority and host (nghttp2_check_authority). */
const AUTHORITY_OK = (() => {
  const ok = new Uint8Array(256);
  const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@[]%";
  for (const c of allowed) ok[c.charCodeAt(0)] = 1;
  return ok;
})();

export function isValidAuthority(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 255 || !AUTHORITY_OK[c]) return false;
  }
  return true;
}

/**
 * Turns what a client sent as :authority into something nghttp2 accepts: grpc-go's passthrough target
 * `http://127.0.0.1:2379` becomes `127.0.0.1:2379` (scheme, path, query and fragment dropped); anything
 * still invalid (or empty) becomes `fallback`.
 */
export function normalizeAuthority(value: string, fallback: string): string {
  let v = value.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const cut = v.search(/[/?#]/);
  if (cut >= 0) v = v.slice(0, cut);
  return v !== '' && isValidAuthority(v) ? v : fallback;
}
