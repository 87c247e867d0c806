// etcdctl 3.4's output formats (-w simple|json|fields|table) for every response nestcdctl prints.
import type {
  AlarmResponse,
  DeleteRangeResponse,
  HashKVResponse,
  HeaderResponse,
  KeyValue,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseTimeToLiveResponse,
  Member,
  MemberAddResponse,
  MemberListResponse,
  MembersResponse,
  NamesResponse,
  Permission,
  PutResponse,
  RangeResponse,
  ResponseHeader,
  ResponseOp,
  RoleGetResponse,
  StatusResponse,
  TxnResponse,
  UserGetResponse,
  WatchBatch,
  WatchEvent,
} from '@nestcd/client';
import { CtlError, ExitCode, type WriteOut } from './context';
import { goDuration, goJson, goQuote, hex, hex16, hexBytes, hexPad16, humanBytes, oe, renderTable } from './format';
import { prefixEnd } from '@nestcd/client';

export interface EpStatus {
  ep: string;
  resp: StatusResponse;
}
export interface EpHealth {
  ep: string;
  health: boolean;
  tookNs: number;
  error: string;
}
export interface EpHashKV {
  ep: string;
  resp: HashKVResponse;
}

const notSupported = (w: string) => new CtlError(ExitCode.BadFeature, `${w} not supported as output format`);

// ---- JSON shapes of etcd's Go structs ----

const isZeroHeader = (h: ResponseHeader) => !h.clusterId && !h.memberId && !h.revision && !h.raftTerm;
const jHeader = (h: ResponseHeader) => ({
  cluster_id: oe(h.clusterId),
  member_id: oe(h.memberId),
  revision: oe(h.revision),
  raft_term: oe(h.raftTerm),
});
const jKv = (kv: KeyValue) => ({
  key: oe(kv.key),
  create_revision: oe(kv.createRevision),
  mod_revision: oe(kv.modRevision),
  version: oe(kv.version),
  value: oe(kv.value),
  lease: oe(kv.lease),
});
const jRange = (r: RangeResponse) => ({ header: jHeader(r.header), kvs: oe(r.kvs.map(jKv)), more: oe(r.more), count: oe(r.count) });
const jPut = (r: PutResponse) => ({ header: jHeader(r.header), prev_kv: r.prevKv ? jKv(r.prevKv) : undefined });
const jDel = (r: DeleteRangeResponse) => ({ header: jHeader(r.header), deleted: oe(r.deleted), prev_kvs: oe(r.prevKvs.map(jKv)) });
const jTxn = (r: TxnResponse): object => ({
  header: jHeader(r.header),
  succeeded: oe(r.succeeded),
  responses: oe(
    r.responses.map((op) => {
      if ('range' in op) return { Response: { ResponseRange: jRange(op.range) } };
      if ('put' in op) return { Response: { ResponsePut: jPut(op.put) } };
      if ('deleteRange' in op) return { Response: { ResponseDeleteRange: jDel(op.deleteRange) } };
      return { Response: { ResponseTxn: jTxn(op.txn) } };
    }),
  ),
});
const jEvent = (e: WatchEvent) => ({ type: e.type === 'delete' ? 1 : undefined, kv: jKv(e.kv), prev_kv: e.prevKv ? jKv(e.prevKv) : undefined });
const jMember = (m: Member) => ({
  ID: oe(m.id),
  name: oe(m.name),
  peerURLs: oe(m.peerUrls),
  clientURLs: oe(m.clientUrls),
  isLearner: oe(m.isLearner),
});
const jStatus = (s: StatusResponse) => ({
  header: jHeader(s.header),
  version: oe(s.version),
  dbSize: oe(s.dbSize),
  leader: oe(s.leader),
  raftIndex: oe(s.raftIndex),
  raftTerm: oe(s.raftTerm),
  raftAppliedIndex: oe(s.raftAppliedIndex),
  errors: oe(s.errors),
  dbSizeInUse: oe(s.dbSizeInUse),
  isLearner: oe(s.isLearner),
});
const PERM_NUM = { READ: 0, WRITE: 1, READWRITE: 2 } as const;
const jPerm = (p: Permission) => ({ permType: oe(PERM_NUM[p.permType]), key: oe(p.key), range_end: oe(p.rangeEnd) });

/** One permission line of etcdctl's `role get` (printer_simple.go's RoleGet). */
function simplePerm(p: Permission): string {
  const key = p.key.toString();
  if (p.rangeEnd.length === 0) return `\t${key}\n`;
  const isOpen = p.rangeEnd.length === 1 && p.rangeEnd[0] === 0;
  let line = isOpen ? `\t[${key}, <open ended>` : `\t[${key}, ${p.rangeEnd.toString()})`;
  if (prefixEnd(p.key).equals(p.rangeEnd)) line += ` (prefix ${key})`;
  return `${line}\n`;
}

const ALARM_NUM = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;

// ---- tables shared by simple and table ----

function memberRows(members: Member[]): string[][] {
  return members.map((m) => [
    hex(m.id),
    m.name ? 'started' : 'unstarted',
    m.name,
    m.peerUrls.join(','),
    m.clientUrls.join(','),
    String(m.isLearner),
  ]);
}
const MEMBER_HDR = ['ID', 'Status', 'Name', 'Peer Addrs', 'Client Addrs', 'Is Learner'];

function statusRows(list: EpStatus[]): string[][] {
  return list.map(({ ep, resp }) => [
    ep,
    hex(resp.header.memberId),
    resp.version,
    humanBytes(resp.dbSize),
    String(resp.leader === resp.header.memberId),
    String(resp.isLearner),
    String(resp.raftTerm),
    String(resp.raftIndex),
    String(resp.raftAppliedIndex),
    resp.errors.join(', '),
  ]);
}
const STATUS_HDR = ['endpoint', 'ID', 'version', 'db size', 'is leader', 'is learner', 'raft term', 'raft index', 'raft applied index', 'errors'];

export class Printer {
  constructor(
    readonly format: WriteOut,
    readonly isHex: boolean,
    readonly valueOnly = false,
  ) {}

  private simpleKv(kv: KeyValue): string {
    const k = this.isHex ? hexBytes(kv.key) : kv.key.toString('latin1');
    const v = this.isHex ? hexBytes(kv.value) : kv.value.toString('latin1');
    return `${this.valueOnly ? '' : `${k}\n`}${v}\n`;
  }

  private fieldsKv(pfx: string, kv: KeyValue): string {
    return (
      `"${pfx}Key" : ${goQuote(kv.key)}\n"${pfx}CreateRevision" : ${kv.createRevision}\n"${pfx}ModRevision" : ${kv.modRevision}\n` +
      `"${pfx}Version" : ${kv.version}\n"${pfx}Value" : ${goQuote(kv.value)}\n"${pfx}Lease" : ${kv.lease}\n`
    );
  }

  private fieldsHdr(h: ResponseHeader): string {
    return `"ClusterID" : ${h.clusterId}\n"MemberID" : ${h.memberId}\n"Revision" : ${h.revision}\n"RaftTerm" : ${h.raftTerm}\n`;
  }

  private only(kinds: WriteOut[]): void {
    if (!kinds.includes(this.format)) throw notSupported(this.format);
  }

  get(r: RangeResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson(jRange(r))}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}${r.kvs.map((kv) => this.fieldsKv('', kv)).join('')}"More" : ${r.more}\n"Count" : ${r.count}\n`;
      case 'simple':
        return r.kvs.map((kv) => this.simpleKv(kv)).join('');
      default:
        throw notSupported(this.format);
    }
  }

  put(r: PutResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson(jPut(r))}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}${r.prevKv ? this.fieldsKv('Prev', r.prevKv) : ''}`;
      case 'simple':
        return `OK\n${r.prevKv ? this.simpleKv(r.prevKv) : ''}`;
      default:
        throw notSupported(this.format);
    }
  }

  del(r: DeleteRangeResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson(jDel(r))}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}"Deleted" : ${r.deleted}\n${r.prevKvs.map((kv) => this.fieldsKv('Prev', kv)).join('')}`;
      case 'simple':
        return `${r.deleted}\n${r.prevKvs.map((kv) => this.simpleKv(kv)).join('')}`;
      default:
        throw notSupported(this.format);
    }
  }

  txn(r: TxnResponse): string {
    const op = (o: ResponseOp): string => {
      if ('range' in o) return this.get(o.range);
      if ('put' in o) return this.put(o.put);
      if ('deleteRange' in o) return this.del(o.deleteRange);
      return this.txn(o.txn);
    };
    switch (this.format) {
      case 'json':
        return `${goJson(jTxn(r))}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}"Succeeded" : ${r.succeeded}\n${r.responses.map(op).join('')}`;
      case 'simple':
        return `${r.succeeded ? 'SUCCESS' : 'FAILURE'}\n${r.responses.map((o) => `\n${op(o)}`).join('')}`;
      default:
        throw notSupported(this.format);
    }
  }

  watch(b: WatchBatch, extra: { compactRevision?: number; canceled?: boolean } = {}): string {
    switch (this.format) {
      case 'json':
        return `${goJson({
          Header: jHeader(b.header),
          Events: b.events.length ? b.events.map(jEvent) : null,
          CompactRevision: extra.compactRevision ?? 0,
          Canceled: !!extra.canceled,
          Created: false,
        })}\n`;
      case 'fields':
        return (
          this.fieldsHdr(b.header) +
          b.events
            .map((e) => `"Type" : ${e.type.toUpperCase()}\n${e.prevKv ? this.fieldsKv('Prev', e.prevKv) : ''}${this.fieldsKv('', e.kv)}`)
            .join('')
        );
      case 'simple':
        return b.events.map((e) => `${e.type.toUpperCase()}\n${e.prevKv ? this.simpleKv(e.prevKv) : ''}${this.simpleKv(e.kv)}`).join('');
      default:
        throw notSupported(this.format);
    }
  }

  grant(r: LeaseGrantResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ ...jHeader(r.header), ID: r.id, TTL: r.ttl, Error: '' })}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}"ID" : ${r.id}\n"TTL" : ${r.ttl}\n`;
      case 'simple':
        return `lease ${hex16(r.id)} granted with TTL(${r.ttl}s)\n`;
      default:
        throw notSupported(this.format);
    }
  }

  revoke(id: bigint, header: ResponseHeader): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(header) })}\n`;
      case 'fields':
        return this.fieldsHdr(header);
      case 'simple':
        return `lease ${hex16(id)} revoked\n`;
      default:
        throw notSupported(this.format);
    }
  }

  keepAlive(r: { header: ResponseHeader; id: bigint; ttl: number }): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ ...jHeader(r.header), ID: r.id, TTL: r.ttl })}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}"ID" : ${r.id}\n"TTL" : ${r.ttl}\n`;
      case 'simple':
        return `lease ${hex16(r.id)} keepalived with TTL(${r.ttl})\n`;
      default:
        throw notSupported(this.format);
    }
  }

  timeToLive(r: LeaseTimeToLiveResponse, keys: boolean): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ ...jHeader(r.header), id: r.id, ttl: r.ttl, 'granted-ttl': r.grantedTtl, keys: r.keys.length ? r.keys : null })}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}"ID" : ${r.id}\n"TTL" : ${r.ttl}\n"GrantedTTL" : ${r.grantedTtl}\n${r.keys.map((k) => `"Key" : ${goQuote(k)}\n`).join('')}`;
      case 'simple': {
        if (r.grantedTtl === 0 && r.ttl === -1) return `lease ${hex16(r.id)} already expired\n`;
        let txt = `lease ${hex16(r.id)} granted with TTL(${r.grantedTtl}s), remaining(${r.ttl}s)`;
        if (keys) txt += `, attached keys([${r.keys.map((k) => k.toString('latin1')).join(' ')}])`;
        return `${txt}\n`;
      }
      default:
        throw notSupported(this.format);
    }
  }

  leases(r: LeaseLeasesResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ ...jHeader(r.header), leases: r.leases.length ? r.leases.map((id) => ({ id })) : null })}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}${r.leases.map((id) => `"ID" : ${id}\n`).join('')}`;
      case 'simple':
        return `found ${r.leases.length} leases\n${r.leases.map((id) => `${hex16(id)}\n`).join('')}`;
      default:
        throw notSupported(this.format);
    }
  }

  memberList(r: MemberListResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(r.header), members: oe(r.members.map(jMember)) })}\n`;
      case 'fields':
        return this.fieldsHdr(r.header) + r.members.map((m) => this.fieldsMember(m)).join('');
      case 'table':
        return renderTable(MEMBER_HDR, memberRows(r.members));
      case 'simple':
        return memberRows(r.members).map((row) => `${row.join(', ')}\n`).join('');
      default:
        throw notSupported(this.format);
    }
  }

  private fieldsMember(m: Member): string {
    return (
      `"ID" : ${m.id}\n"Name" : ${goQuote(m.name)}\n` +
      m.peerUrls.map((u) => `"PeerURL" : ${goQuote(u)}\n`).join('') +
      m.clientUrls.map((u) => `"ClientURL" : ${goQuote(u)}\n`).join('') +
      `"IsLearner" : ${m.isLearner}\n\n`
    );
  }

  /** member add/remove/update/promote; `verb` as etcdctl words it. */
  memberChange(verb: 'added to' | 'removed from' | 'updated in' | 'promoted in', id: bigint, r: MemberAddResponse | MembersResponse): string {
    switch (this.format) {
      case 'json': {
        const member = 'member' in r ? { member: jMember(r.member) } : {};
        return `${goJson({ header: jHeader(r.header), ...member, members: oe(r.members.map(jMember)) })}\n`;
      }
      case 'fields': {
        let s = this.fieldsHdr(r.header);
        if ('member' in r) s += `"Member" : ${goQuote(`${r.member.id}`)}\n`;
        return s + r.members.map((m) => this.fieldsMember(m)).join('');
      }
      case 'simple':
        return `Member ${hexPad16(id)} ${verb} cluster ${hexPad16(r.header.clusterId)}\n`;
      default:
        throw notSupported(this.format);
    }
  }

  endpointStatus(list: EpStatus[]): string {
    switch (this.format) {
      case 'json':
        return `${goJson(list.map((s) => ({ Endpoint: s.ep, Status: jStatus(s.resp) })))}\n`;
      case 'fields':
        return list
          .map(
            ({ ep, resp }) =>
              `${this.fieldsHdr(resp.header)}"Version" : ${goQuote(resp.version)}\n"DBSize" : ${resp.dbSize}\n"Leader" : ${resp.leader}\n` +
              `"IsLearner" : ${resp.isLearner}\n"RaftIndex" : ${resp.raftIndex}\n"RaftTerm" : ${resp.raftTerm}\n` +
              `"RaftAppliedIndex" : ${resp.raftAppliedIndex}\n"Errors" : [${resp.errors.join(' ')}]\n"Endpoint" : ${goQuote(ep)}\n\n`,
          )
          .join('');
      case 'table':
        return renderTable(STATUS_HDR, statusRows(list));
      case 'simple':
        return statusRows(list).map((row) => `${row.join(', ')}\n`).join('');
      default:
        throw notSupported(this.format);
    }
  }

  /** endpoint health: [stdout, stderr] (etcdctl's simple format writes to stderr). */
  endpointHealth(list: EpHealth[]): [string, string] {
    switch (this.format) {
      case 'json':
        return [`${goJson(list.map((h) => ({ endpoint: h.ep, health: h.health, took: goDuration(h.tookNs), error: oe(h.error) })))}\n`, ''];
      case 'fields':
        return [
          list.map((h) => `"Endpoint" : ${goQuote(h.ep)}\n"Health" : ${h.health}\n"Took" : ${goDuration(h.tookNs)}\n"Error" : ${h.error}\n\n`).join(''),
          '',
        ];
      case 'table':
        return [
          renderTable(
            ['endpoint', 'health', 'took', 'error'],
            list.map((h) => [h.ep, String(h.health), goDuration(h.tookNs), h.error]),
          ),
          '',
        ];
      case 'simple':
        return [
          '',
          list
            .map((h) =>
              h.error === ''
                ? `${h.ep} is healthy: successfully committed proposal: took = ${goDuration(h.tookNs)}\n`
                : `${h.ep} is unhealthy: failed to commit proposal: ${h.error}\n`,
            )
            .join(''),
        ];
      default:
        throw notSupported(this.format);
    }
  }

  endpointHashKV(list: EpHashKV[]): string {
    switch (this.format) {
      case 'json':
        return `${goJson(
          list.map((h) => ({
            Endpoint: h.ep,
            HashKV: { header: jHeader(h.resp.header), hash: oe(h.resp.hash), compact_revision: oe(h.resp.compactRevision) },
          })),
        )}\n`;
      case 'fields':
        return list.map((h) => `${this.fieldsHdr(h.resp.header)}"Endpoint" : ${goQuote(h.ep)}\n"Hash" : ${h.resp.hash}\n\n`).join('');
      case 'table':
        return renderTable(['endpoint', 'hash'], list.map((h) => [h.ep, String(h.resp.hash)]));
      case 'simple':
        return list.map((h) => `${h.ep}, ${h.resp.hash}\n`).join('');
      default:
        throw notSupported(this.format);
    }
  }

  alarm(r: AlarmResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({
          header: isZeroHeader(r.header) ? undefined : jHeader(r.header),
          alarms: oe(r.alarms.map((a) => ({ memberID: oe(a.memberId), alarm: oe(ALARM_NUM[a.alarm]) }))),
        })}\n`;
      case 'fields':
        return this.fieldsHdr(r.header) + r.alarms.map((a) => `"MemberID" : ${a.memberId}\n"AlarmType" : ${a.alarm}\n\n`).join('');
      case 'simple':
        return r.alarms.map((a) => `memberID:${a.memberId} alarm:${a.alarm} \n`).join('');
      default:
        throw notSupported(this.format);
    }
  }

  moveLeader(leader: bigint, target: bigint, header: ResponseHeader): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(header) })}\n`;
      case 'fields':
        return this.fieldsHdr(header);
      case 'simple':
        return `Leadership transferred from ${hex(leader)} to ${hex(target)}\n`;
      default:
        throw notSupported(this.format);
    }
  }

  /** snapshot status. */
  dbStatus(s: { hash: number; revision: number; totalKey: number; totalSize: number }): string {
    const row = [s.hash.toString(16), String(s.revision), String(s.totalKey), humanBytes(s.totalSize)];
    switch (this.format) {
      case 'json':
        return `${goJson({ hash: s.hash, revision: s.revision, totalKey: s.totalKey, totalSize: s.totalSize })}\n`;
      case 'fields':
        return `"Hash" : ${s.hash}\n"Revision" : ${s.revision}\n"Keys" : ${s.totalKey}\n"Size" : ${s.totalSize}\n`;
      case 'table':
        return renderTable(['hash', 'revision', 'total keys', 'total size'], [row]);
      default:
        return `${row.join(', ')}\n`;
    }
  }

  // ---- auth: user / role (etcdctl prints these after the call, so a bad -w fails after the change was made) ----

  /** Responses etcdctl prints as a simple sentence, or their header alone in json/fields. */
  authChange(simple: string, r: HeaderResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(r.header) })}\n`;
      case 'fields':
        return this.fieldsHdr(r.header);
      case 'simple':
        return `${simple}\n`;
      default:
        throw notSupported(this.format);
    }
  }

  userGet(name: string, r: UserGetResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(r.header), roles: oe(r.roles) })}\n`;
      case 'simple':
        return `User: ${name}\nRoles:${r.roles.map((role) => ` ${role}`).join('')}\n`;
      default:
        throw notSupported(this.format);
    }
  }

  userList(r: NamesResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(r.header), users: oe(r.names) })}\n`;
      case 'simple':
        return r.names.map((n) => `${n}\n`).join('');
      default:
        throw notSupported(this.format);
    }
  }

  roleList(r: NamesResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(r.header), roles: oe(r.names) })}\n`;
      case 'fields':
        return `${this.fieldsHdr(r.header)}"Roles" :${r.names.map((n) => ` ${goQuote(n)}`).join('')}\n`;
      case 'simple':
        return r.names.map((n) => `${n}\n`).join('');
      default:
        throw notSupported(this.format);
    }
  }

  roleGet(role: string, r: RoleGetResponse): string {
    switch (this.format) {
      case 'json':
        return `${goJson({ header: jHeader(r.header), perm: oe(r.perm.map(jPerm)) })}\n`;
      case 'fields':
        return (
          this.fieldsHdr(r.header) +
          r.perm.map((p) => `"PermType" :  ${p.permType}\n"Key" : ${goQuote(p.key)}\n"RangeEnd" : ${goQuote(p.rangeEnd)}\n`).join('')
        );
      case 'simple': {
        const reads = r.perm.filter((p) => p.permType !== 'WRITE').map(simplePerm).join('');
        const writes = r.perm.filter((p) => p.permType !== 'READ').map(simplePerm).join('');
        return `Role ${role}\nKV Read:\n${reads}KV Write:\n${writes}`;
      }
      default:
        throw notSupported(this.format);
    }
  }

  /** Formats without a json/fields/table variant for a command (etcdctl ignores -w there). */
  checkOnly(kinds: WriteOut[]): void {
    this.only(kinds);
  }
}
