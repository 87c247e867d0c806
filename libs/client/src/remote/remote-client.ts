// The KvClient over etcd's gRPC v3 API, for nestcd and real etcd 3.4 alike, plus the cluster, maintenance and auth
// calls nestcdctl needs. Loads no server code.
import * as grpc from '@grpc/grpc-js';
import { Readable } from 'node:stream';
import { ClientError, ClientErrorCode } from '../errors';
import type {
  CompactResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeepAlive,
  KeepAliveHandlers,
  KvClient,
  LeaseGrantResponse,
  LeaseTimeToLiveResponse,
  MemberListResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  Watch,
  WatchHandlers,
  WatchRequest,
} from '../types';
import type {
  AlarmMember,
  AlarmResponse,
  AlarmType,
  AuthenticateResponse,
  HashKVResponse,
  HashResponse,
  HeaderResponse,
  LeaseLeasesResponse,
  MemberAddResponse,
  MembersResponse,
  NamesResponse,
  Permission,
  PermissionType,
  RoleGetResponse,
  UserGetResponse,
} from './admin-types';
import { big, buf, Codec, endField, decodeHeader, decodeMember, decodeStatus, num, type Wire } from './codec';
import { Connection, toClientError, type CallOptions, type Endpoint, type RemoteClientOptions } from './connection';
import { KeepAliveStream } from './keepalive';
import { Namespace } from './namespace';
import { WatchStreams } from './watch';

const ALARMS: AlarmType[] = ['NONE', 'NOSPACE', 'CORRUPT'];
const PERMS: PermissionType[] = ['READ', 'WRITE', 'READWRITE'];

export interface RemoteCallOptions extends CallOptions {
  /** send to this endpoint (one of `endpoints`) only, without failover: etcdctl's per-endpoint maintenance calls. */
  endpoint?: string;
}

export class RemoteClient implements KvClient {
  private readonly conn: Connection;
  private readonly codec: Codec;
  private readonly watches: WatchStreams;
  private readonly keepAlives: KeepAliveStream;
  /** TTLs of the leases granted through this client, so a keep-alive knows its deadline before the first answer. */
  private readonly grantedTtls = new Map<string, number>();

  constructor(readonly options: RemoteClientOptions) {
    this.conn = new Connection(options);
    this.codec = new Codec(new Namespace(options.namespace));
    this.watches = new WatchStreams(this.conn, this.codec);
    this.keepAlives = new KeepAliveStream(this.conn);
  }

  /** The configured endpoints, as given. */
  get endpoints(): string[] {
    return this.conn.endpoints.map((e) => e.url);
  }

  /** The endpoint requests currently go to. */
  get activeEndpoint(): string {
    return this.conn.active.url;
  }

  private pinned(opts?: RemoteCallOptions): Endpoint | undefined {
    if (!opts?.endpoint) return undefined;
    const ep = this.conn.endpoints.find((e) => e.url === opts.endpoint || e.address === opts.endpoint);
    if (!ep) throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, `endpoint ${opts.endpoint} is not one of the client's endpoints`);
    return ep;
  }

  private call(service: Parameters<Connection['unary']>[0], method: string, req: Wire, idempotent: boolean, opts?: RemoteCallOptions): Promise<Wire> {
    return this.conn.unary(service, method, req, idempotent, opts, this.pinned(opts));
  }

  // ---- KV ----

  async range(req: RangeRequest, opts?: RemoteCallOptions): Promise<RangeResponse> {
    return this.codec.rangeResponse(await this.call('KV', 'range', this.codec.rangeRequest(req), true, opts));
  }

  async put(req: PutRequest, opts?: RemoteCallOptions): Promise<PutResponse> {
    return this.codec.putResponse(await this.call('KV', 'put', this.codec.putRequest(req), false, opts));
  }

  async deleteRange(req: DeleteRangeRequest, opts?: RemoteCallOptions): Promise<DeleteRangeResponse> {
    return this.codec.deleteResponse(await this.call('KV', 'deleteRange', this.codec.deleteRequest(req), false, opts));
  }

  async txn(req: TxnRequest, opts?: RemoteCallOptions): Promise<TxnResponse> {
    return this.codec.txnResponse(await this.call('KV', 'txn', this.codec.txnRequest(req), false, opts));
  }

  async compact(revision: number, physical = false, opts?: RemoteCallOptions): Promise<CompactResponse> {
    const res = await this.call('KV', 'compact', { revision: String(revision), physical }, false, opts);
    return { header: decodeHeader(res.header) };
  }

  // ---- Watch ----

  watch(req: WatchRequest, handlers: WatchHandlers): Watch {
    return this.watches.watch(req, handlers);
  }

  /** Asks for a progress notification on every watch (etcd's RequestProgress). */
  watchProgress(): void {
    this.watches.requestProgress();
  }

  // ---- Lease ----

  async leaseGrant(ttlSeconds: number, id: bigint = 0n, opts?: RemoteCallOptions): Promise<LeaseGrantResponse> {
    const res = await this.call('Lease', 'leaseGrant', { TTL: String(ttlSeconds), ID: id.toString() }, false, opts);
    if (res.error) throw new ClientError(ClientErrorCode.UNKNOWN, String(res.error));
    const granted = { header: decodeHeader(res.header), id: big(res.ID), ttl: num(res.TTL) };
    if (this.grantedTtls.size > 10_000) this.grantedTtls.clear(); // a hint only: never let it grow without bound
    this.grantedTtls.set(granted.id.toString(), granted.ttl);
    return granted;
  }

  async leaseRevoke(id: bigint, opts?: RemoteCallOptions): Promise<void> {
    this.grantedTtls.delete(id.toString());
    await this.call('Lease', 'leaseRevoke', { ID: id.toString() }, false, opts);
  }

  async leaseTimeToLive(id: bigint, keys = false, opts?: RemoteCallOptions): Promise<LeaseTimeToLiveResponse> {
    const res = await this.call('Lease', 'leaseTimeToLive', { ID: id.toString(), keys }, true, opts);
    return {
      header: decodeHeader(res.header),
      id: big(res.ID),
      ttl: num(res.TTL),
      grantedTtl: num(res.grantedTTL),
      keys: (res.keys ?? []).map((k: unknown) => this.codec.ns.strip(buf(k))),
    };
  }

  async leaseLeases(opts?: RemoteCallOptions): Promise<bigint[]> {
    return (await this.leaseList(opts)).leases;
  }

  /** LeaseLeases with its header. */
  async leaseList(opts?: RemoteCallOptions): Promise<LeaseLeasesResponse> {
    const res = await this.call('Lease', 'leaseLeases', {}, true, opts);
    return { header: decodeHeader(res.header), leases: (res.leases ?? []).map((l: Wire) => big(l.ID)) };
  }

  async leaseKeepAliveOnce(id: bigint, opts?: RemoteCallOptions): Promise<number> {
    return (await this.leaseKeepAliveOnceFull(id, opts)).ttl;
  }

  /** One renewal on a stream of its own, with the response header (etcdctl's `lease keep-alive --once`). */
  async leaseKeepAliveOnceFull(id: bigint, opts?: RemoteCallOptions): Promise<{ header: ReturnType<typeof decodeHeader>; id: bigint; ttl: number }> {
    const deadline = Date.now() + (opts?.timeoutMs ?? this.conn.callTimeoutMs);
    for (let attempt = 0; ; attempt++) {
      const ep = this.pinned(opts) ?? (await this.conn.ready(deadline));
      try {
        const md = await this.conn.metadata(ep, deadline);
        const res = await new Promise<Wire>((resolve, reject) => {
          const stream = (ep.stubs.Lease.leaseKeepAlive as (md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientDuplexStream<Wire, Wire>)(md, { deadline });
          stream.once('data', (r: Wire) => {
            resolve(r);
            stream.on('error', () => undefined);
            stream.cancel();
          });
          stream.once('error', (err) => reject(toClientError(err)));
          stream.once('end', () => reject(new ClientError(ClientErrorCode.UNAVAILABLE, 'keepalive stream closed by the server')));
          stream.write({ ID: id.toString() });
        });
        const ttl = num(res.TTL);
        if (ttl <= 0) throw new ClientError(ClientErrorCode.NOT_FOUND, 'etcdserver: requested lease not found');
        return { header: decodeHeader(res.header), id: big(res.ID), ttl };
      } catch (err) {
        const e = toClientError(err);
        if (e.code !== ClientErrorCode.UNAVAILABLE || opts?.endpoint || Date.now() >= deadline) throw e;
        this.conn.failover(ep);
        await new Promise((r) => setTimeout(r, Math.min(50 * (attempt + 1), 500)));
      }
    }
  }

  leaseKeepAlive(id: bigint, handlers: KeepAliveHandlers): KeepAlive {
    return this.keepAlives.keepAlive(id, handlers, this.grantedTtls.get(id.toString()));
  }

  // ---- Cluster ----

  async memberList(opts?: RemoteCallOptions): Promise<MemberListResponse> {
    return this.members(await this.call('Cluster', 'memberList', {}, true, opts));
  }

  async memberAdd(peerUrls: string[], isLearner = false, opts?: RemoteCallOptions): Promise<MemberAddResponse> {
    const res = await this.call('Cluster', 'memberAdd', { peerURLs: peerUrls, isLearner }, false, opts);
    return { header: decodeHeader(res.header), member: decodeMember(res.member ?? {}), members: (res.members ?? []).map(decodeMember) };
  }

  async memberRemove(id: bigint, opts?: RemoteCallOptions): Promise<MembersResponse> {
    return this.members(await this.call('Cluster', 'memberRemove', { ID: id.toString() }, false, opts));
  }

  async memberUpdate(id: bigint, peerUrls: string[], opts?: RemoteCallOptions): Promise<MembersResponse> {
    return this.members(await this.call('Cluster', 'memberUpdate', { ID: id.toString(), peerURLs: peerUrls }, false, opts));
  }

  async memberPromote(id: bigint, opts?: RemoteCallOptions): Promise<MembersResponse> {
    return this.members(await this.call('Cluster', 'memberPromote', { ID: id.toString() }, false, opts));
  }

  private members(res: Wire): MembersResponse {
    return { header: decodeHeader(res.header), members: (res.members ?? []).map(decodeMember) };
  }

  // ---- Maintenance ----

  async status(opts?: RemoteCallOptions): Promise<StatusResponse> {
    return decodeStatus(await this.call('Maintenance', 'status', {}, true, opts));
  }

  async alarmList(opts?: RemoteCallOptions): Promise<AlarmResponse> {
    return this.alarms(await this.call('Maintenance', 'alarm', { action: 0, memberID: '0', alarm: 0 }, true, opts));
  }

  /** Disarms the given alarms (etcdctl's `alarm disarm` passes every alarm alarmList returned). */
  async alarmDisarm(alarm: AlarmMember, opts?: RemoteCallOptions): Promise<AlarmResponse> {
    const req = { action: 2, memberID: alarm.memberId.toString(), alarm: ALARMS.indexOf(alarm.alarm) };
    return this.alarms(await this.call('Maintenance', 'alarm', req, false, opts));
  }

  private alarms(res: Wire): AlarmResponse {
    return {
      header: decodeHeader(res.header),
      alarms: (res.alarms ?? []).map((a: Wire) => ({ memberId: big(a.memberID), alarm: ALARMS[num(a.alarm)] ?? 'NONE' })),
    };
  }

  async defragment(opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return { header: decodeHeader((await this.call('Maintenance', 'defragment', {}, false, { timeoutMs: 60_000, ...opts })).header) };
  }

  async hash(opts?: RemoteCallOptions): Promise<HashResponse> {
    const res = await this.call('Maintenance', 'hash', {}, true, opts);
    return { header: decodeHeader(res.header), hash: num(res.hash) };
  }

  async hashKV(revision = 0, opts?: RemoteCallOptions): Promise<HashKVResponse> {
    const res = await this.call('Maintenance', 'HashKV', { revision: String(revision) }, true, opts);
    return { header: decodeHeader(res.header), hash: num(res.hash), compactRevision: num(res.compactRevision) };
  }

  async moveLeader(targetId: bigint, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return { header: decodeHeader((await this.call('Maintenance', 'moveLeader', { targetID: targetId.toString() }, false, opts)).header) };
  }

  /**
   * The member's backend as a stream of Buffers (etcd's Snapshot RPC, no deadline). Errors arrive as ClientError
   * on the stream's 'error' event.
   */
  snapshot(opts?: Omit<RemoteCallOptions, 'timeoutMs'>): Readable {
    const out = new Readable({ read: () => undefined });
    void (async () => {
      try {
        const deadline = Date.now() + this.conn.dialTimeoutMs * this.conn.endpoints.length;
        const ep = this.pinned(opts) ?? (await this.conn.ready(deadline));
        const md = await this.conn.metadata(ep, deadline);
        const call = (ep.stubs.Maintenance.snapshot as (req: Wire, md: grpc.Metadata) => grpc.ClientReadableStream<Wire>)({}, md);
        out.on('close', () => call.cancel());
        call.on('data', (chunk: Wire) => {
          const blob = buf(chunk.blob);
          if (blob.length) out.push(blob);
        });
        call.on('error', (err) => out.destroy(toClientError(err)));
        call.on('end', () => out.push(null));
      } catch (err) {
        out.destroy(toClientError(err));
      }
    })();
    return out;
  }

  // ---- Auth ----

  async authEnable(opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('authEnable', {}, opts);
  }

  async authDisable(opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('authDisable', {}, opts);
  }

  async authenticate(name: string, password: string, opts?: RemoteCallOptions): Promise<AuthenticateResponse> {
    const res = await this.call('Auth', 'authenticate', { name, password }, false, opts);
    return { header: decodeHeader(res.header), token: String(res.token ?? '') };
  }

  async userAdd(name: string, password: string, noPassword = false, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('userAdd', { name, password, options: { noPassword } }, opts);
  }

  async userGet(name: string, opts?: RemoteCallOptions): Promise<UserGetResponse> {
    const res = await this.call('Auth', 'userGet', { name }, true, opts);
    return { header: decodeHeader(res.header), roles: [...(res.roles ?? [])] };
  }

  async userList(opts?: RemoteCallOptions): Promise<NamesResponse> {
    const res = await this.call('Auth', 'userList', {}, true, opts);
    return { header: decodeHeader(res.header), names: [...(res.users ?? [])] };
  }

  async userDelete(name: string, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('userDelete', { name }, opts);
  }

  async userChangePassword(name: string, password: string, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('userChangePassword', { name, password }, opts);
  }

  async userGrantRole(user: string, role: string, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('userGrantRole', { user, role }, opts);
  }

  async userRevokeRole(name: string, role: string, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('userRevokeRole', { name, role }, opts);
  }

  async roleAdd(name: string, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('roleAdd', { name }, opts);
  }

  async roleGet(role: string, opts?: RemoteCallOptions): Promise<RoleGetResponse> {
    const res = await this.call('Auth', 'roleGet', { role }, true, opts);
    return {
      header: decodeHeader(res.header),
      perm: (res.perm ?? []).map((p: Wire): Permission => ({ permType: PERMS[num(p.permType)] ?? 'READ', key: buf(p.key), rangeEnd: buf(p.rangeEnd) })),
    };
  }

  async roleList(opts?: RemoteCallOptions): Promise<NamesResponse> {
    const res = await this.call('Auth', 'roleList', {}, true, opts);
    return { header: decodeHeader(res.header), names: [...(res.roles ?? [])] };
  }

  async roleDelete(role: string, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('roleDelete', { role }, opts);
  }

  /** Keys of permissions are not namespaced (etcdctl's role commands see the raw keyspace). */
  async roleGrantPermission(name: string, perm: Permission, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('roleGrantPermission', { name, perm: { permType: PERMS.indexOf(perm.permType), key: perm.key, ...endField(perm.rangeEnd) } }, opts);
  }

  async roleRevokePermission(role: string, key: Buffer, rangeEnd: Buffer = Buffer.alloc(0), opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return this.headerOnly('roleRevokePermission', { role, key, ...endField(rangeEnd) }, opts);
  }

  private async headerOnly(method: string, req: Wire, opts?: RemoteCallOptions): Promise<HeaderResponse> {
    return { header: decodeHeader((await this.call('Auth', method, req, false, opts)).header) };
  }

  async close(): Promise<void> {
    this.watches.close();
    this.keepAlives.close();
    this.conn.close();
  }
}
