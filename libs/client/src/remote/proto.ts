import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

// etcd's .proto files live in libs/api; they are read by path (here and in dist/ alike, where the build copies
// them next to libs/api's output) so the remote client never loads any server code.
function protoDir(): string {
  const candidates = [join(__dirname, '..', '..', '..', 'api', 'src', 'proto'), join(__dirname, '..', '..', '..', '..', 'libs', 'api', 'src', 'proto')];
  const found = candidates.find((dir) => existsSync(join(dir, 'rpc.proto')));
  if (!found) throw new Error(`@nestcd/client: etcd protos not found (looked in ${candidates.join(', ')})`);
  return found;
}

export type EtcdServiceName = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth';

let cached: Record<EtcdServiceName, grpc.ServiceClientConstructor> | undefined;

/** etcd's v3 service stubs: camelCase fields, int64 as decimal strings, enums as numbers, bytes as Buffers. */
export function etcdServices(): Record<EtcdServiceName, grpc.ServiceClientConstructor> {
  if (!cached) {
    const dir = protoDir();
    const def = protoLoader.loadSync(['rpc.proto', 'kv.proto', 'auth.proto'], {
      keepCase: false,
      longs: String,
      enums: Number,
      defaults: true,
      oneofs: true,
      includeDirs: [dir],
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { etcdserverpb: Record<EtcdServiceName, grpc.ServiceClientConstructor> };
    cached = pkg.etcdserverpb;
  }
  return cached;
}
