import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';

export const PROTO_DIR = join(__dirname, 'proto');

/** How every nestcd component sees etcd's messages: camelCase fields, int64 as decimal strings, enums as numbers. */
export const PROTO_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: Number,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: grpc.GrpcObject | undefined;

/** etcd's v3 services, loaded once per process. */
export function loadEtcdProto(): {
  etcdserverpb: Record<string, grpc.ServiceClientConstructor>;
  mvccpb: grpc.GrpcObject;
} {
  cached ??= grpc.loadPackageDefinition(protoLoader.loadSync(['rpc.proto', 'kv.proto', 'auth.proto'], PROTO_OPTIONS));
  return cached as never;
}

export function serviceDefinition(name: 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth'): grpc.ServiceDefinition {
  return loadEtcdProto().etcdserverpb[name].service;
}
