// etcd 3.4's grpc-gateway: POST /v3/<service>/<method> (and /v3beta/) with a JSON body, answered by the same
// handlers the gRPC services use, so the two APIs cannot drift apart.
import * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '@nestcd/server';
import { EventEmitter } from 'node:events';
import type * as http from 'node:http';
import { AuthGuard } from '../auth-guard';
import { authHandlers } from '../auth.service';
import { toServiceError, UnaryHandler } from '../errors';
import { kvHandlers } from '../kv.service';
import { learnerGuard } from '../learner-guard';
import { leaseHandlers } from '../lease.service';
import { clusterHandlers, maintenanceHandlers } from '../maintenance.service';
import { watchHandlers } from '../watch.service';
import { describeZodError, messageType, requestSchema, toProtoJson } from './proto-json';

/** grpc-gateway's HTTPStatusFromCode. */
export function httpStatusOf(code: number): number {
  switch (code) {
    case grpc.status.OK: return 200;
    case grpc.status.CANCELLED: return 408;
    case grpc.status.INVALID_ARGUMENT: return 400;
    case grpc.status.DEADLINE_EXCEEDED: return 504;
    case grpc.status.NOT_FOUND: return 404;
    case grpc.status.ALREADY_EXISTS: return 409;
    case grpc.status.PERMISSION_DENIED: return 403;
    case grpc.status.UNAUTHENTICATED: return 401;
    case grpc.status.RESOURCE_EXHAUSTED: return 429;
    case grpc.status.FAILED_PRECONDITION: return 400;
    case grpc.status.ABORTED: return 409;
    case grpc.status.OUT_OF_RANGE: return 400;
    case grpc.status.UNIMPLEMENTED: return 501;
    case grpc.status.UNAVAILABLE: return 503;
    default: return 500;
  }
}

/** The headers etcd's gateway puts on every answer (it wraps the mux in a permissive CORS handler). */
export const GATEWAY_HEADERS = {
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Origin': '*',
} as const;

type Kind = 'unary' | 'serverStream' | 'bidiStream';
interface Endpoint {
  kind: Kind;
  requestType: string;
  responseType: string;
  handler: (...args: any[]) => void;
}

class BadRequest extends Error {}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** The JSON gateway's routes; `handle` answers one request, or returns false when the path is not one of them. */
export class V3Gateway {
  private readonly endpoints = new Map<string, Endpoint>();

  constructor(private readonly server: EtcdServer, log?: (msg: string) => void) {
    // The same permission checks as the gRPC services: the caller is whoever the Authorization header's token
    // names (etcd's gateway passes that header on as the token).
    // A learner refuses all but Status and serializable Range here too (learnerGuard, as on gRPC).
    const guard = new AuthGuard(server);
    type Handlers = Record<string, Endpoint['handler']>;
    const kv = learnerGuard(server, 'KV', guard.wrap('KV', kvHandlers(server, log)), log) as Handlers;
    const lease = learnerGuard(server, 'Lease', guard.wrap('Lease', leaseHandlers(server, log)), log) as Handlers;
    const cluster = learnerGuard(server, 'Cluster', guard.wrap('Cluster', clusterHandlers(server, log)), log) as Handlers;
    const maintenance = learnerGuard(server, 'Maintenance', guard.wrap('Maintenance', maintenanceHandlers(server, log)), log) as Handlers;
    const watch = learnerGuard(server, 'Watch', watchHandlers(server, { watchRefusal: (call, key, rangeEnd) => guard.watchRefusal(call, key, rangeEnd) }), log) as Handlers;
    const auth = learnerGuard(server, 'Auth', authHandlers(server, guard, log), log) as Handlers;
    const add = (path: string, kind: Kind, handler: Endpoint['handler'], req: string, res: string) =>
      this.endpoints.set(path, { kind, handler, requestType: req, responseType: res });
    add('kv/range', 'unary', kv.Range, 'RangeRequest', 'RangeResponse');
    add('kv/put', 'unary', kv.Put, 'PutRequest', 'PutResponse');
    add('kv/deleterange', 'unary', kv.DeleteRange, 'DeleteRangeRequest', 'DeleteRangeResponse');
    add('kv/txn', 'unary', kv.Txn, 'TxnRequest', 'TxnResponse');
    add('kv/compaction', 'unary', kv.Compact, 'CompactionRequest', 'CompactionResponse');
    add('watch', 'bidiStream', watch.Watch, 'WatchRequest', 'WatchResponse');
    add('lease/grant', 'unary', lease.LeaseGrant, 'LeaseGrantRequest', 'LeaseGrantResponse');
    add('kv/lease/revoke', 'unary', lease.LeaseRevoke, 'LeaseRevokeRequest', 'LeaseRevokeResponse');
    add('lease/revoke', 'unary', lease.LeaseRevoke, 'LeaseRevokeRequest', 'LeaseRevokeResponse');
    add('kv/lease/timetolive', 'unary', lease.LeaseTimeToLive, 'LeaseTimeToLiveRequest', 'LeaseTimeToLiveResponse');
    add('lease/timetolive', 'unary', lease.LeaseTimeToLive, 'LeaseTimeToLiveRequest', 'LeaseTimeToLiveResponse');
    add('kv/lease/leases', 'unary', lease.LeaseLeases, 'LeaseLeasesRequest', 'LeaseLeasesResponse');
    add('lease/leases', 'unary', lease.LeaseLeases, 'LeaseLeasesRequest', 'LeaseLeasesResponse');
    add('lease/keepalive', 'bidiStream', lease.LeaseKeepAlive, 'LeaseKeepAliveRequest', 'LeaseKeepAliveResponse');
    add('cluster/member/add', 'unary', cluster.MemberAdd, 'MemberAddRequest', 'MemberAddResponse');
    add('cluster/member/remove', 'unary', cluster.MemberRemove, 'MemberRemoveRequest', 'MemberRemoveResponse');
    add('cluster/member/update', 'unary', cluster.MemberUpdate, 'MemberUpdateRequest', 'MemberUpdateResponse');
    add('cluster/member/list', 'unary', cluster.MemberList, 'MemberListRequest', 'MemberListResponse');
    add('cluster/member/promote', 'unary', cluster.MemberPromote, 'MemberPromoteRequest', 'MemberPromoteResponse');
    add('maintenance/alarm', 'unary', maintenance.Alarm, 'AlarmRequest', 'AlarmResponse');
    add('maintenance/status', 'unary', maintenance.Status, 'StatusRequest', 'StatusResponse');
    add('maintenance/defragment', 'unary', maintenance.Defragment, 'DefragmentRequest', 'DefragmentResponse');
    add('maintenance/hash', 'unary', maintenance.Hash, 'HashRequest', 'HashResponse');
    add('maintenance/snapshot', 'serverStream', maintenance.Snapshot, 'SnapshotRequest', 'SnapshotResponse');
    add('maintenance/transfer-leadership', 'unary', maintenance.MoveLeader, 'MoveLeaderRequest', 'MoveLeaderResponse');
    add('auth/enable', 'unary', auth.AuthEnable, 'AuthEnableRequest', 'AuthEnableResponse');
    add('auth/disable', 'unary', auth.AuthDisable, 'AuthDisableRequest', 'AuthDisableResponse');
    add('auth/authenticate', 'unary', auth.Authenticate, 'AuthenticateRequest', 'AuthenticateResponse');
    add('auth/user/add', 'unary', auth.UserAdd, 'AuthUserAddRequest', 'AuthUserAddResponse');
    add('auth/user/get', 'unary', auth.UserGet, 'AuthUserGetRequest', 'AuthUserGetResponse');
    add('auth/user/list', 'unary', auth.UserList, 'AuthUserListRequest', 'AuthUserListResponse');
    add('auth/user/delete', 'unary', auth.UserDelete, 'AuthUserDeleteRequest', 'AuthUserDeleteResponse');
    add('auth/user/changepw', 'unary', auth.UserChangePassword, 'AuthUserChangePasswordRequest', 'AuthUserChangePasswordResponse');
    add('auth/user/grant', 'unary', auth.UserGrantRole, 'AuthUserGrantRoleRequest', 'AuthUserGrantRoleResponse');
    add('auth/user/revoke', 'unary', auth.UserRevokeRole, 'AuthUserRevokeRoleRequest', 'AuthUserRevokeRoleResponse');
    add('auth/role/add', 'unary', auth.RoleAdd, 'AuthRoleAddRequest', 'AuthRoleAddResponse');
    add('auth/role/get', 'unary', auth.RoleGet, 'AuthRoleGetRequest', 'AuthRoleGetResponse');
    add('auth/role/list', 'unary', auth.RoleList, 'AuthRoleListRequest', 'AuthRoleListResponse');
    add('auth/role/delete', 'unary', auth.RoleDelete, 'AuthRoleDeleteRequest', 'AuthRoleDeleteResponse');
    add('auth/role/grant', 'unary', auth.RoleGrantPermission, 'AuthRoleGrantPermissionRequest', 'AuthRoleGrantPermissionResponse');
    add('auth/role/revoke', 'unary', auth.RoleRevokePermission, 'AuthRoleRevokePermissionRequest', 'AuthRoleRevokePermissionResponse');
  }

  /** Answers the request when its path is a gateway route; false when it is not. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean {
    const m = /^\/v3(?:beta)?\/(.+)$/.exec(path);
    const endpoint = m ? this.endpoints.get(m[1]) : undefined;
    if (!endpoint) return false;
    if (req.method !== 'POST') {
      res.writeHead(405, { ...GATEWAY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end('Method Not Allowed\n');
      req.resume();
      return true;
    }
    if (endpoint.kind === 'bidiStream') this.stream(req, res, endpoint);
    else void this.unaryOrServerStream(req, res, endpoint);
    return true;
  }

  private parse(endpoint: Endpoint, text: string): object {
    let json: unknown;
    if (text.trim() === '') json = {};
    else {
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw new BadRequest(`invalid JSON: ${(err as Error).message}`);
      }
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new BadRequest(`the body must be a JSON object (${endpoint.requestType})`);
    }
    const parsed = requestSchema(messageType(endpoint.requestType)).safeParse(json);
    if (!parsed.success) throw new BadRequest(describeZodError(parsed.error));
    return parsed.data as object;
  }

  private async unaryOrServerStream(req: http.IncomingMessage, res: http.ServerResponse, endpoint: Endpoint): Promise<void> {
    let request: object;
    try {
      request = this.parse(endpoint, await readBody(req));
    } catch (err) {
      return sendError(res, err);
    }
    const responseType = messageType(endpoint.responseType);
    if (endpoint.kind === 'unary') {
      (endpoint.handler as UnaryHandler)({ request, ...callContext(req) } as grpc.ServerUnaryCall<object, object>, (err, value) => {
        if (err) return sendError(res, err);
        sendJson(res, 200, toProtoJson(responseType, value));
      });
      return;
    }
    const call = new StreamCall(res, responseType);
    Object.assign(call, { request, ...callContext(req) });
    endpoint.handler(call);
  }

  /** A stream whose requests are newline-delimited JSON objects in the body and whose answers go back the same way. */
  private stream(req: http.IncomingMessage, res: http.ServerResponse, endpoint: Endpoint): void {
    const call = new StreamCall(res, messageType(endpoint.responseType));
    const isKeepAlive = endpoint.requestType === 'LeaseKeepAliveRequest';
    let pending = '';
    let requests = 0;
    const take = (line: string) => {
      if (line.trim() === '') return;
      let request: object;
      try {
        request = this.parse(endpoint, line);
      } catch (err) {
        call.destroy(err);
        return;
      }
      requests++;
      call.emit('data', request);
    };
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      pending += chunk;
      if (pending.length > MAX_BODY_BYTES) return call.destroy(new BadRequest('request body too large'));
      // JSON objects may follow one another with or without newlines between them; split on complete objects.
      for (;;) {
        const end = completeObjectEnd(pending);
        if (end < 0) break;
        take(pending.slice(0, end));
        pending = pending.slice(end);
      }
    });
    req.on('end', () => {
      take(pending);
      pending = '';
      // Lease keep-alive ends once every renewal is answered, as etcd's does when the client closes its side;
      // a watch keeps streaming until the client goes away.
      if (isKeepAlive) call.endAfter(requests);
    });
    res.on('close', () => call.emit('cancelled'));
    Object.assign(call, callContext(req));
    endpoint.handler(call);
  }

  get routes(): string[] {
    return [...this.endpoints.keys()];
  }
}

/** What the auth guard reads of a call: the token (etcd's gateway takes it from the Authorization header) and the peer. */
function callContext(req: http.IncomingMessage): { metadata: grpc.Metadata; getPeer: () => string } {
  const metadata = new grpc.Metadata();
  const token = req.headers.authorization;
  if (token) metadata.set('token', token);
  return { metadata, getPeer: () => `${req.socket.remoteAddress}:${req.socket.remotePort}` };
}

/** The part of grpc-js's server stream the handlers use, written to an HTTP response as `{"result":...}` lines. */
class StreamCall extends EventEmitter {
  private started = false;
  private written = 0;
  private endAt = -1;
  private finished = false;

  constructor(private readonly res: http.ServerResponse, private readonly responseType: ReturnType<typeof messageType>) {
    super();
    res.on('drain', () => this.emit('drain'));
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { ...GATEWAY_HEADERS, 'Content-Type': 'application/json' });
  }

  write(message: object): boolean {
    if (this.finished) return true;
    this.start();
    this.written++;
    const ok = this.res.write(`${JSON.stringify({ result: toProtoJson(this.responseType, message) })}\n`);
    if (this.endAt >= 0 && this.written >= this.endAt) this.end();
    return ok;
  }

  endAfter(count: number): void {
    this.endAt = count;
    if (this.written >= count) this.end();
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.start();
    this.res.end();
  }

  destroy(err?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.started) return sendError(this.res, err);
    const e = errorBody(err);
    this.res.end(`${JSON.stringify({ error: e.body })}\n`);
  }
}

function completeObjectEnd(text: string): number {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let begun = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      depth++;
      begun = true;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth <= 0 && begun) return i + 1;
    } else if (!begun && c.trim() !== '') {
      // Not an object: hand everything to the parser, which reports what is wrong.
      const nl = text.indexOf('\n', i);
      return nl < 0 ? -1 : nl + 1;
    }
  }
  return -1;
}

function errorBody(err: unknown): { status: number; body: { error: string; message: string; code: number } } {
  if (err instanceof BadRequest) {
    return { status: 400, body: { error: err.message, message: err.message, code: grpc.status.INVALID_ARGUMENT } };
  }
  const se = err && typeof err === 'object' && 'code' in err && typeof (err as grpc.ServiceError).code === 'number'
    ? (err as grpc.ServiceError)
    : toServiceError(err);
  const message = se.details ?? se.message;
  return { status: httpStatusOf(se.code), body: { error: message, message, code: se.code } };
}

function sendError(res: http.ServerResponse, err: unknown): void {
  const { status, body } = errorBody(err);
  sendJson(res, status, body);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  const text = JSON.stringify(body);
  res.writeHead(status, { ...GATEWAY_HEADERS, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function readBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new BadRequest('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

