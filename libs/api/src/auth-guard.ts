import * as grpc from '@grpc/grpc-js';
import { AuthInfo, AuthStore, PermType } from '@nestcd/auth';
import { EtcdError, GrpcCode } from '@nestcd/errors';
import type { EtcdServer } from '@nestcd/server';
import { toBigInt } from './codec';
import { toServiceError } from './errors';
import type { PbCompare, PbRequestOp, PbTxnRequest } from './wire';

/** The client certificate's common name for a connection, by `call.getPeer()` (set by the TLS front door). */
export type PeerCommonName = (peer: string) => string | undefined;

type Check = (info: AuthInfo | undefined, req: any) => void;
type AnyCall = { metadata: grpc.Metadata; getPeer(): string };

const empty = Buffer.alloc(0);
/** grpc-go's names of the codes auth checks answer with. */
const CODE_NAMES: Partial<Record<GrpcCode, string>> = {
  [GrpcCode.INVALID_ARGUMENT]: 'InvalidArgument',
  [GrpcCode.PERMISSION_DENIED]: 'PermissionDenied',
  [GrpcCode.UNAUTHENTICATED]: 'Unauthenticated',
  [GrpcCode.FAILED_PRECONDITION]: 'FailedPrecondition',
};
const buf = (b: Buffer | undefined | null): Buffer => b ?? empty;

/**
 * etcd's permission checks in front of the gRPC handlers (etcd's authApplierV3, authMaintenanceServer and
 * checkMembershipOperationPermission): who asks comes from the `token` metadata, or from the client
 * certificate's common name with --client-cert-auth; every check reads the replicated auth store.
 */
export class AuthGuard {
  constructor(private readonly server: EtcdServer, private readonly peerCommonName?: PeerCommonName) {}

  get auth(): AuthStore {
    return this.server.state.auth;
  }

  /** Who the call is from; throws etcd's invalid-token error for an unknown or expired token. */
  info(call: { metadata: grpc.Metadata; getPeer(): string }): AuthInfo | undefined {
    // Nobody when auth is off (authInfo's first answer), without building the call's metadata or peer name.
    if (!this.auth.enabled) return undefined;
    const token = call.metadata.get('token')[0];
    const certUser = this.peerCommonName?.(call.getPeer());
    return this.auth.authInfo(token === undefined ? undefined : String(token), certUser);
  }

  // ---- the checks, by RPC ----

  private read = (info: AuthInfo | undefined, key: Buffer | undefined, rangeEnd?: Buffer | null) =>
    this.auth.checkPermission(info, buf(key), buf(rangeEnd), PermType.READ);
  private write = (info: AuthInfo | undefined, key: Buffer | undefined, rangeEnd?: Buffer | null) =>
    this.auth.checkPermission(info, buf(key), buf(rangeEnd), PermType.WRITE);

  /** A put may not attach a lease whose keys the user could not write (it could not revoke it). */
  private leaseKeys = (info: AuthInfo | undefined, leaseId: bigint): void => {
    if (leaseId === 0n || !this.server.store.hasLease(leaseId)) return;
    for (const key of this.server.store.leaseTimeToLive(leaseId, true).keys) this.write(info, Buffer.from(key));
  };

  private put = (info: AuthInfo | undefined, pb: { key: Buffer; prevKv: boolean; lease: string | number }) => {
    this.write(info, pb.key);
    this.leaseKeys(info, toBigInt(pb.lease ?? 0));
    if (pb.prevKv) this.read(info, pb.key);
  };

  private deleteRange = (info: AuthInfo | undefined, pb: { key: Buffer; rangeEnd: Buffer; prevKv: boolean }) => {
    if (pb.prevKv) this.read(info, pb.key, pb.rangeEnd);
    this.write(info, pb.key, pb.rangeEnd);
  };

  private txn = (info: AuthInfo | undefined, pb: PbTxnRequest): void => {
    for (const c of (pb.compare ?? []) as PbCompare[]) this.read(info, c.key, c.rangeEnd);
    for (const op of [...(pb.success ?? []), ...(pb.failure ?? [])] as PbRequestOp[]) {
      if (op.requestRange) this.read(info, op.requestRange.key, op.requestRange.rangeEnd);
      else if (op.requestPut) this.put(info, { ...op.requestPut, prevKv: false });
      else if (op.requestDeleteRange) this.deleteRange(info, op.requestDeleteRange);
      else if (op.requestTxn) this.txn(info, op.requestTxn);
    }
  };

  private admin = (info: AuthInfo | undefined) => this.auth.checkAdmin(info);
  private authenticated = () => undefined;

  /** Checks by service and method; a method not listed is served to anyone, as etcd does. */
  private readonly checks: Record<string, Record<string, Check>> = {
    KV: {
      Range: (i, pb) => this.read(i, pb.key, pb.rangeEnd),
      Put: (i, pb) => this.put(i, pb),
      DeleteRange: (i, pb) => this.deleteRange(i, pb),
      Txn: (i, pb) => this.txn(i, pb),
      Compact: this.authenticated,
    },
    Lease: {
      LeaseGrant: this.authenticated,
      LeaseRevoke: (i, pb) => this.leaseKeys(i, toBigInt(pb.ID)),
    },
    Cluster: {
      MemberAdd: this.admin,
      MemberRemove: this.admin,
      MemberUpdate: this.admin,
      MemberPromote: this.admin,
    },
    Maintenance: {
      Defragment: this.admin,
      Hash: this.admin,
      HashKV: this.admin,
      Snapshot: this.admin,
    },
  };

  /** Wraps a service's handlers with its checks (unary and server-streaming calls). */
  wrap<T extends object>(service: string, handlers: T): T {
    const serviceChecks = this.checks[service];
    if (!serviceChecks) return handlers;
    // etcd's maintenance server hands back the auth store's own errors, which grpc turns into code Unknown
    // with the "auth: ..." text; the other services answer with etcdserver's errors.
    const checks = service !== 'Maintenance' ? serviceChecks : Object.fromEntries(
      Object.entries(serviceChecks).map(([method, check]) => [method, (i: AuthInfo | undefined, req: unknown) => {
        try {
          check(i, req);
        } catch (err) {
          if (err instanceof EtcdError) throw new EtcdError(GrpcCode.UNKNOWN, err.message.replace(/^etcdserver: /, 'auth: '));
          throw err;
        }
      }]),
    );
    const out: Record<string, unknown> = { ...(handlers as Record<string, unknown>) };
    for (const [method, check] of Object.entries(checks)) {
      const inner = (handlers as Record<string, Function>)[method];
      if (typeof inner !== 'function') continue;
      if (inner.length >= 2) {
        // unary: (call, callback)
        out[method] = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
          try {
            check(this.info(call), call.request);
          } catch (err) {
            callback(toServiceError(err));
            return;
          }
          inner(call, callback);
        };
      } else {
        // server streaming: (call)
        out[method] = (call: grpc.ServerWritableStream<any, any>) => {
          try {
            check(this.info(call), call.request);
          } catch (err) {
            call.destroy(toServiceError(err));
            return;
          }
          inner(call);
        };
      }
    }
    return out as T;
  }

  /**
   * etcd's isWatchPermitted: undefined when the stream's user may watch [key, rangeEnd), else the refusal as
   * etcd words a cancelled watcher's reason (`rpc error: code = PermissionDenied desc = etcdserver: ...`).
   */
  watchRefusal(call: AnyCall, key: Buffer, rangeEnd: Buffer): string | undefined {
    try {
      this.read(this.info(call), key, rangeEnd);
      return undefined;
    } catch (err) {
      if (!(err instanceof EtcdError)) throw err;
      return `rpc error: code = ${CODE_NAMES[err.code] ?? 'Unknown'} desc = ${err.message}`;
    }
  }
}
