import * as grpc from '@grpc/grpc-js';
import type { CallCount, EtcdServer } from '@nestcd/server';
import { putResponseSerializer } from './codec';
import { kvHandlers } from './kv.service';
import { leaseHandlers } from './lease.service';
import { clusterHandlers, maintenanceHandlers } from './maintenance.service';
import { serviceDefinition } from './proto';
import { watchHandlers, WatchOptions } from './watch.service';
import { FrontDoor, Http1Handler } from './front-door';
import { withPeerAddresses } from './front-door-split';
import { FastUnaryMethod, UnaryFastPath } from './unary-fast-path';
import { AuthGuard } from './auth-guard';
import { learnerGuard } from './learner-guard';
import { authHandlers } from './auth.service';
import type * as tls from 'node:tls';

/** etcd lets a gRPC message exceed --max-request-bytes by this much before grpc itself refuses it. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
const MAX_SEND_BYTES = 2 ** 31 - 1;
/** The unary KV calls served by UnaryFastPath ahead of grpc-js (the hot path of every client). */
const FAST_KV_METHODS = ['Range', 'Put', 'DeleteRange', 'Txn'] as const;

export interface GrpcServerOptions extends WatchOptions {
  log?: (msg: string) => void;
  /** Takes HTTP/1.x connections on the client port (see FrontDoor); without it they get a 404. */
  http1Handler?: Http1Handler;
  /** TLS for https:// client URLs (see @nestcd/auth's serverOptions); `clientCertAuth` makes the CN the user. */
  tls?: { options: tls.TlsOptions; clientCertAuth: boolean };
}

/** grpc-go's names of the status codes, as go-grpc-prometheus labels them. */
const CODE_NAMES = ['OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated'];

/** Wraps a service's handlers so every finished call counts in grpc_server_handled_total. */
function countedHandlers(server: EtcdServer, service: string, definition: grpc.ServiceDefinition, handlers: Record<string, Function>): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    const def = definition[method];
    const type = !def ? 'unary' : def.requestStream && def.responseStream ? 'bidi_stream' : def.responseStream ? 'server_stream' : def.requestStream ? 'client_stream' : 'unary';
    // One count per status code, looked up once (see ServerMetrics.handledCount).
    const byCode = new Map<number, CallCount>();
    const count = (code: number) => {
      let counted = byCode.get(code);
      if (!counted) {
        counted = server.metrics.handledCount({ grpc_type: type, grpc_service: service, grpc_method: method, grpc_code: CODE_NAMES[code] ?? 'Unknown' });
        byCode.set(code, counted);
      }
      counted.n++;
    };
    if (type === 'unary') {
      out[method] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        handler(call, (err: grpc.ServiceError | null, value?: unknown) => {
          count(err ? (err.code ?? grpc.status.UNKNOWN) : grpc.status.OK);
          callback(err, value);
        })) as grpc.handleUnaryCall<unknown, unknown>;
    } else {
      out[method] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        let counted = false;
        const once = (code: number) => {
          if (!counted) count(code);
          counted = true;
        };
        call.on('finish', () => once(grpc.status.OK));
        call.on('cancelled', () => once(grpc.status.CANCELLED));
        handler(call);
      }) as grpc.handleServerStreamingCall<unknown, unknown>;
    }
  }
  return out;
}

/** etcd's v3 services on grpc-js, bound to the member's client URLs. */
export class EtcdGrpcServer {
  private readonly grpcServer: grpc.Server;
  readonly boundPorts: number[] = [];
  private frontDoor?: FrontDoor;
  private readonly fastPath: UnaryFastPath;

  constructor(private readonly server: EtcdServer, private readonly options: GrpcServerOptions = {}) {
    this.grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': server.config.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      'grpc.max_send_message_length': MAX_SEND_BYTES,
      // channelz keeps per-call counters and traces nobody reads here; it was the largest allocator per call.
      'grpc.enable_channelz': 0,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5000,
    });
    const log = options.log;
    // Every call is counted (grpc_server_handled_total), learners refuse all but Status and serializable
    // Range (etcd 3.4's interceptor), and every service goes through the auth guard (etcd's permission checks;
    // with client cert auth the certificate's common name is the user when a request carries no token).
    const guard = new AuthGuard(server, (peer) => (options.tls?.clientCertAuth ? this.frontDoor?.peerCommonName(peer) : undefined));
    const watchOptions: WatchOptions = { ...options, watchRefusal: (call, key, rangeEnd) => guard.watchRefusal(call, key, rangeEnd) };
    const fastMethods = new Map<string, FastUnaryMethod>();
    const add = (name: 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth', handlers: Record<string, unknown>) => {
      const definition = serviceDefinition(name);
      const guarded = learnerGuard(server, name, handlers, log) as Record<string, Function>;
      const implementation = countedHandlers(server, `etcdserverpb.${name}`, definition, guarded);
      this.grpcServer.addService(definition, implementation);
      if (name !== 'KV') return;
      for (const method of FAST_KV_METHODS) {
        const def = definition[method];
        fastMethods.set(def.path, {
          deserialize: def.requestDeserialize,
          serialize: method === 'Put' ? putResponseSerializer(def.responseSerialize) : (def.responseSerialize as (value: unknown) => Buffer),
          handler: implementation[method] as grpc.handleUnaryCall<unknown, unknown>,
        });
      }
    };
    add('KV', guard.wrap('KV', kvHandlers(server, log)));
    add('Watch', watchHandlers(server, watchOptions));
    add('Lease', guard.wrap('Lease', leaseHandlers(server, log)));
    add('Cluster', guard.wrap('Cluster', clusterHandlers(server, log)));
    add('Maintenance', guard.wrap('Maintenance', maintenanceHandlers(server, log)));
    add('Auth', authHandlers(server, guard, log));
    this.fastPath = new UnaryFastPath(fastMethods, server.config.maxRequestBytes + GRPC_OVERHEAD_BYTES, MAX_SEND_BYTES);
  }

  /**
   * Listens on every listen-client-url through a FrontDoor, which hands gRPC connections to grpc-js (repairing
   * the URL-shaped :authority some grpc-go clients send) and HTTP/1.x to `http1Handler`; resolves with the
   * bound ports (0 in a URL picks a free one).
   */
  async listen(urls: string[]): Promise<number[]> {
    this.frontDoor ??= new FrontDoor(withPeerAddresses(() => this.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure())), {
      log: this.options.log,
      http1Handler: this.options.http1Handler,
      streams: this.fastPath,
    });
    for (const raw of urls) {
      const u = new URL(raw);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`listen-client-urls: ${raw}: scheme must be http or https`);
      if (u.protocol === 'https:' && !this.options.tls) throw new Error(`listen-client-urls: ${raw}: https needs --cert-file and --key-file (or --auto-tls)`);
      const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
      let port: number;
      try {
        port = await this.frontDoor.listen(host, Number(u.port || '2379'), u.protocol === 'https:' ? this.options.tls!.options : undefined);
      } catch (err) {
        throw new Error(`cannot listen on ${raw}: ${(err as Error).message}`);
      }
      this.boundPorts.push(port);
    }
    return this.boundPorts;
  }

  async close(graceMs = 2000): Promise<void> {
    // Stop accepting and drop connections not yet handed to grpc-js; grpc-js's shutdown closes the others.
    const doorClosed = this.frontDoor?.close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.grpcServer.forceShutdown();
        resolve();
      }, graceMs);
      this.grpcServer.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (doorClosed) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([doorClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
  }
}
