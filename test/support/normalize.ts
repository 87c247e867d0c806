/**
 * Mask the parts of etcdctl output that legitimately differ between two servers
 * (or two runs): member/cluster/lease IDs, ports, timestamps, durations, server
 * version, db size, raft index, remaining TTLs, client UUIDs in clientv3 logs.
 *
 * Everything else (keys, values, revisions, versions of keys, raft term, error
 * texts, exit codes, output layout) is kept, so comparing normalized output of
 * nestcd with real etcd's is a strict compatibility check.
 */
import type { EtcdctlResult } from './etcdctl';

export interface NormalizeOptions {
  /**
   * Lock / election names: lines `name/<hex lease id>` (etcdctl prints the lease ID
   * unpadded with %x there, so the generic 16-digit rule may not catch it) become `name/<LEASE>`.
   */
  lockNames?: string[];
  /** Keep remaining TTLs (`remaining(99s)`, `"ttl":99`) instead of masking them. */
  keepRemainingTtl?: boolean;
  /**
   * Also mask the raft term (header raft_term, RaftTerm, raftTerm, RAFT TERM column).
   * Off by default: a fresh single-member etcd is always at term 2 and nestcd must match.
   * Default: true when the environment variable COMPAT_MASK_RAFT_TERM=1 (useful while
   * nestcd's raft bootstrap differs, so other differences show up).
   */
  maskRaftTerm?: boolean;
}

/** Columns of etcdctl tables whose cells are masked. */
const MASKED_COLUMNS: Record<string, string> = {
  ID: '<ID>',
  VERSION: '<VERSION>',
  'DB SIZE': '<DBSIZE>',
  'RAFT INDEX': '<INDEX>',
  'RAFT APPLIED INDEX': '<INDEX>',
  TOOK: '<DURATION>',
};
const RAFT_TERM_COLUMN = 'RAFT TERM';

const JSON_ID_KEYS = ['cluster_id', 'member_id', 'ID', 'id', 'leader', 'lease', 'Leader'];
const FIELDS_ID_KEYS = ['ClusterID', 'MemberID', 'ID', 'Lease', 'Leader'];

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const DURATION = String.raw`\d+(?:\.\d+)?(?:ns|µs|us|ms|s|m|h)(?:\d+(?:\.\d+)?(?:ns|µs|us|ms|s))*`;

function normalizeTables(text: string, maskRaftTerm: boolean): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let header: string[] | undefined;
  for (const line of lines) {
    if (/^\+[-+]+\+$/.test(line)) {
      out.push('+---+');
      continue;
    }
    if (/^\|.*\|$/.test(line)) {
      const cells = line
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim());
      if (!header) {
        header = cells;
      } else {
        cells.forEach((c, i) => {
          const col = header![i] ?? '';
          const mask = MASKED_COLUMNS[col] ?? (maskRaftTerm && col === RAFT_TERM_COLUMN ? '<TERM>' : undefined);
          if (mask && c !== '') cells[i] = mask;
        });
      }
      out.push(`| ${cells.join(' | ')} |`);
      continue;
    }
    header = undefined;
    out.push(line);
  }
  return out.join('\n');
}

export function normalize(text: string, opts: NormalizeOptions = {}): string {
  let s = text;
  // clientv3 zap log lines: timestamp and per-client UUID.
  s = s.replace(/"ts":"[^"]*"/g, '"ts":"<TS>"');
  s = s.replace(/endpoint:\/\/client-[0-9a-f-]+\//g, 'endpoint://client-<UUID>/');
  // Ports on loopback.
  s = s.replace(/(127\.0\.0\.1|localhost):\d+/g, '$1:<PORT>');
  // Lock / election keys.
  for (const name of opts.lockNames ?? []) {
    s = s.replace(new RegExp(`(^|[\\s=])(${escapeRe(name)})/[0-9a-f]+(?=$|\\s)`, 'gm'), '$1$2/<LEASE>');
  }
  // Durations.
  s = s.replace(new RegExp(`took = ${DURATION}`, 'g'), 'took = <DURATION>');
  s = s.replace(/"took":"[^"]*"/g, '"took":"<DURATION>"');
  // Decimal IDs in -w json / -w fields (0 means "none" and is kept).
  for (const k of JSON_ID_KEYS) {
    s = s.replace(new RegExp(`"${k}":[1-9]\\d*`, 'g'), `"${k}":"<ID>"`);
  }
  for (const k of FIELDS_ID_KEYS) {
    s = s.replace(new RegExp(`"${k}" : [1-9]\\d*`, 'g'), `"${k}" : <ID>`);
  }
  // endpoint status -w json / fields.
  s = s.replace(/"version":"[^"]*"/g, '"version":"<VERSION>"');
  s = s.replace(/"(dbSize|dbSizeInUse)":\d+/g, '"$1":"<DBSIZE>"');
  s = s.replace(/"(raftIndex|raftAppliedIndex)":\d+/g, '"$1":"<INDEX>"');
  s = s.replace(/"Version" : "[^"]*"/g, '"Version" : "<VERSION>"');
  s = s.replace(/"(DBSize|DBSizeInUse)" : \d+/g, '"$1" : <DBSIZE>');
  s = s.replace(/"(RaftIndex|RaftAppliedIndex)" : \d+/g, '"$1" : <INDEX>');
  // endpoint status simple: "ep, id, version, dbsize, isLeader, isLearner, term, index, applied, errors"
  s = s.replace(
    /^(\S+), ([0-9a-f]+|<HEX>), ([^,]+), ([^,]+), (true|false), (true|false), (\d+), (\d+), (\d+), /gm,
    '$1, <ID>, <VERSION>, <DBSIZE>, $5, $6, $7, <INDEX>, <INDEX>, ',
  );
  // member list simple: the member ID is printed with %x (NOT zero-padded: 15 digits when it starts with 0).
  s = s.replace(/^[0-9a-f]{1,16}, (started|unstarted), /gm, '<ID>, $1, ');
  // Remaining TTL of a lease depends on timing.
  if (!opts.keepRemainingTtl) {
    s = s.replace(/remaining\(-?\d+s\)/g, 'remaining(<TTL>s)');
    s = s.replace(/"ttl":-?\d+/g, '"ttl":"<TTL>"');
  }
  const maskRaftTerm = opts.maskRaftTerm ?? process.env.COMPAT_MASK_RAFT_TERM === '1';
  if (maskRaftTerm) {
    s = s.replace(/"(raft_term|raftTerm)":\d+/g, '"$1":"<TERM>"');
    s = s.replace(/"RaftTerm" : \d+/g, '"RaftTerm" : <TERM>');
    s = s.replace(/^(\S+, <ID>, <VERSION>, <DBSIZE>, (?:true|false), (?:true|false), )\d+, /gm, '$1<TERM>, ');
  }
  // 16-digit hex IDs (member IDs, lease IDs as printed by etcdctl with %016x).
  s = s.replace(/\b[0-9a-f]{16}\b/g, '<HEX>');
  s = normalizeTables(s, maskRaftTerm);
  return s;
}

export interface NormalizedResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function normalizeResult(r: EtcdctlResult, opts?: NormalizeOptions): NormalizedResult {
  return { code: r.code, signal: r.signal, stdout: normalize(r.stdout, opts), stderr: normalize(r.stderr, opts) };
}

/** Apply normalize() to every string inside a plain object/array structure. */
export function normalizeDeep<T>(value: T, opts?: NormalizeOptions): T {
  if (typeof value === 'string') return normalize(value, opts) as unknown as T;
  if (Array.isArray(value)) return value.map((v) => normalizeDeep(v, opts)) as unknown as T;
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'args' || k === 'timedOut') continue; // bookkeeping of EtcdctlResult
      o[k] = normalizeDeep(v, opts);
    }
    return o as T;
  }
  return value;
}

/** Parse an etcdctl ASCII table (-w table) into rows of trimmed cells, header first. */
export function parseTable(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => /^\|.*\|$/.test(l))
    .map((l) =>
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
}
