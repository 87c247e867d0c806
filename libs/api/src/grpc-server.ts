import * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '@nestcd/server';
import { kvHandlers } from './kv.service';
import { leaseHandlers } from './lease.service';
import { clusterHandlers, maintenanceHandlers } from './maintenance.service';
import { serviceDefinition } from './proto';
import { watchHandlers, WatchOptions } from './watch.service';

/** etcd lets a gRPC message exceed --max-request-bytes by this much before grpc itself refuses it. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

export interface GrpcServerOptions extends WatchOptions {
  log?: (msg: string) => void;
}

/** etcd's v3 services on grpc-js, bound to the member's client URLs. */
export class EtcdGrpcServer {
  private readonly grpcServer: grpc.Server;
  readonly boundPorts: number[] = [];

  constructor(private readonly server: EtcdServer, options: GrpcServerOptions = {}) {
    this.grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': server.config.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      'grpc.max_send_message_length': 2 ** 31 - 1,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5000,
    });
    const log = options.log;
    this.grpcServer.addService(serviceDefinition('KV'), kvHandlers(server, log));
    this.grpcServer.addService(serviceDefinition('Watch'), watchHandlers(server, options));
    this.grpcServer.addService(serviceDefinition('Lease'), leaseHandlers(server, log));
    this.grpcServer.addService(serviceDefinition('Cluster'), clusterHandlers(server, log));
    this.grpcServer.addService(serviceDefinition('Maintenance'), maintenanceHandlers(server, log));
  }

  /** Binds every listen-client-url; resolves with the bound ports (0 in a URL picks a free one). */
  async listen(urls: string[]): Promise<number[]> {
    for (const raw of urls) {
      const u = new URL(raw);
      if (u.protocol !== 'http:') throw new Error(`listen-client-urls: ${raw}: only http:// is served until TLS lands`);
      const host = u.hostname.startsWith('[') ? u.hostname : u.hostname;
      const port = await new Promise<number>((resolve, reject) =>
        this.grpcServer.bindAsync(`${host}:${u.port || '2379'}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
          err ? reject(new Error(`cannot listen on ${raw}: ${err.message}`)) : resolve(p),
        ),
      );
      this.boundPorts.push(port);
    }
    return this.boundPorts;
  }

  async close(graceMs = 2000): Promise<void> {
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
  }
}
