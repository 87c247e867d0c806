// Go formatting helpers, so nestcdctl prints byte for byte what etcdctl 3.4 (a Go program) prints.

/** Go's %q of a string (strconv.Quote): printable UTF-8 kept, the rest escaped. */
export function goQuote(input: Buffer | string): string {
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8');
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      switch (b) {
        case 0x07: out += '\\a'; continue;
        case 0x08: out += '\\b'; continue;
        case 0x0c: out += '\\f'; continue;
        case 0x0a: out += '\\n'; continue;
        case 0x0d: out += '\\r'; continue;
        case 0x09: out += '\\t'; continue;
        case 0x0b: out += '\\v'; continue;
        case 0x5c: out += '\\\\'; continue;
        case 0x22: out += '\\"'; continue;
      }
      out += b < 0x20 || b === 0x7f ? `\\x${b.toString(16).padStart(2, '0')}` : String.fromCharCode(b);
      continue;
    }
    // A multi-byte UTF-8 sequence: kept when valid and printable, otherwise each byte as \xNN.
    const len = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    const chunk = len ? bytes.subarray(i, i + len) : undefined;
    const decoded = chunk && chunk.length === len ? chunk.toString('utf8') : '';
    if (decoded && !decoded.includes('\ufffd') && Buffer.byteLength(decoded) === len && /\P{C}/u.test(decoded)) {
      out += decoded;
      i += len;
    } else {
      out += `\\x${b.toString(16).padStart(2, '0')}`;
      i++;
    }
  }
  return `${out}"`;
}

/** etcdctl --hex: every byte as \xNN. */
export function hexBytes(b: Buffer): string {
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
}

/** Round half to even, like Go's strconv for %.Nf. */
function toFixedEven(v: number, digits: number): string {
  const f = 10 ** digits;
  const scaled = v * f;
  const floor = Math.floor(scaled);
  const diff = scaled - floor;
  let r = floor;
  if (diff > 0.5 + 1e-9) r = floor + 1;
  else if (Math.abs(diff - 0.5) <= 1e-9) r = floor % 2 === 0 ? floor : floor + 1;
  return (r / f).toFixed(digits);
}

/** go-humanize's Bytes(): SI units, "20 kB". */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const sizes = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? toFixedEven(val, 1) : toFixedEven(val, 0)} ${sizes[e]}`;
}

/** Go's time.Duration.String() of a duration in nanoseconds. */
export function goDuration(ns: number): string {
  ns = Math.round(ns);
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = Math.abs(ns);
  const trim = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  let out: string;
  if (u < 1e3) out = `${u}ns`;
  else if (u < 1e6) out = `${trim((u / 1e3).toFixed(3))}µs`;
  else if (u < 1e9) out = `${trim((u / 1e6).toFixed(6))}ms`;
  else {
    const h = Math.floor(u / 3.6e12);
    u -= h * 3.6e12;
    const m = Math.floor(u / 6e10);
    u -= m * 6e10;
    const s = `${trim((u / 1e9).toFixed(9))}s`;
    out = h ? `${h}h${m}m${s}` : m ? `${m}m${s}` : s;
  }
  return neg ? `-${out}` : out;
}

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 6e10, h: 3.6e12 };

/** Go's time.ParseDuration, in milliseconds; throws Go's message on bad input. */
export function parseGoDuration(s: string): number {
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let rest = s;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (!rest) throw new Error(`time: invalid duration "${s}"`);
  let total = 0;
  re.lastIndex = 0;
  while (re.lastIndex < rest.length) {
    const m = re.exec(rest);
    if (!m) {
      if (/^[\d.]+$/.test(rest)) throw new Error(`time: missing unit in duration "${s}"`);
      throw new Error(`time: invalid duration "${s}"`);
    }
    total += Number(m[1]) * UNIT_NS[m[2]];
  }
  return (sign * total) / 1e6;
}

/** Go's strconv.ParseInt/ParseUint with its error texts. */
export function goParseInt(s: string, base: 10 | 16, unsigned = false): bigint {
  const fn = unsigned ? 'ParseUint' : 'ParseInt';
  const digits = base === 16 ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/;
  const neg = !unsigned && s.startsWith('-');
  const body = !unsigned && (s.startsWith('-') || s.startsWith('+')) ? s.slice(1) : s;
  if (!digits.test(body)) throw new Error(`strconv.${fn}: parsing ${goQuote(s)}: invalid syntax`);
  const v = BigInt(base === 16 ? `0x${body}` : body) * (neg ? -1n : 1n);
  const max = unsigned ? (1n << 64n) - 1n : (1n << 63n) - 1n;
  const min = unsigned ? 0n : -(1n << 63n);
  if (v > max || v < min) throw new Error(`strconv.${fn}: parsing ${goQuote(s)}: value out of range`);
  return v;
}

/** The %x of an ID (Go's uint64, so negative int64 lease IDs never occur here). */
export const hex = (id: bigint): string => id.toString(16);
export const hex16 = (id: bigint): string => id.toString(16).padStart(16, '0');
/** %16x: space padded. */
export const hexPad16 = (id: bigint): string => id.toString(16).padStart(16, ' ');

/**
 * olekukonko/tablewriter as etcdctl uses it: upper-case centred header, right-aligned cells, one row per line.
 */
export function renderTable(header: string[], rows: string[][]): string {
  const head = header.map((h) => h.toUpperCase());
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+\n`;
  const centre = (s: string, w: number) => {
    const pad = w + 2 - s.length;
    const left = Math.floor(pad / 2);
    return ' '.repeat(left) + s + ' '.repeat(pad - left);
  };
  let out = line;
  out += `|${head.map((h, i) => centre(h, widths[i])).join('|')}|\n`;
  out += line;
  for (const r of rows) {
    out += `|${widths.map((w, i) => ` ${' '.repeat(w - [...(r[i] ?? '')].length)}${r[i] ?? ''} `).join('|')}|\n`;
  }
  out += line;
  return out;
}

/**
 * Go's encoding/json for etcd's protobuf structs: ordered fields, bigint as a JSON number, Buffer as base64.
 * Fields whose value is undefined are left out (the caller applies omitempty).
 */
export function goJson(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return goJsonString(v);
  if (Buffer.isBuffer(v)) return `"${v.toString('base64')}"`;
  if (Array.isArray(v)) return `[${v.map(goJson).join(',')}]`;
  const parts: string[] = [];
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (val === undefined) continue;
    parts.push(`${goJsonString(k)}:${goJson(val)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Go escapes <, > and & in JSON strings as \u003c etc. */
function goJsonString(s: string): string {
  return JSON.stringify(s)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** omitempty: undefined for Go's zero values. */
export function oe<T>(v: T): T | undefined {
  if (v === 0 || v === 0n || v === false || v === '' || v === null) return undefined;
  if (Buffer.isBuffer(v) && v.length === 0) return undefined;
  if (Array.isArray(v) && v.length === 0) return undefined;
  return v;
}
