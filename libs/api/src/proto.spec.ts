import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { PROTO_DIR } from './proto';

// Our .proto files are written independently; this proves their wire contract (package, service, method,
// message, field name, number, type and cardinality) equals the copy of etcd's protos the etcd3 client ships.

type Descriptor = Record<string, any>;

function fieldsOf(def: protoLoader.PackageDefinition): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, entry] of Object.entries(def)) {
    const d = entry as Descriptor;
    if (d.format === 'Protocol Buffer 3 DescriptorProto') {
      const msg = d.type as Descriptor;
      for (const f of msg.field) out.set(`${name}.${f.name}`, `${f.number} ${f.type} ${f.label} ${f.typeName ?? ''}`);
    } else if (!d.format) {
      for (const [method, m] of Object.entries(d as Descriptor)) {
        out.set(`${name}/${method}`, `${m.path} ${m.requestStream} ${m.responseStream} ${m.requestType.type.name} ${m.responseType.type.name}`);
      }
    }
  }
  return out;
}

describe('etcd wire contract', () => {
  const opts = { keepCase: true, includeDirs: [PROTO_DIR] };
  const ours = fieldsOf(protoLoader.loadSync(['rpc.proto', 'kv.proto', 'auth.proto'], opts));
  const etcd3Dir = join(dirname(require.resolve('etcd3/package.json')), 'proto');
  const theirs = fieldsOf(protoLoader.loadSync(['rpc.proto', 'kv.proto', 'auth.proto'], { keepCase: true, includeDirs: [etcd3Dir] }));

  it('defines the services and messages etcdctl 3.4 uses', () => {
    for (const name of ['etcdserverpb.KV/Range', 'etcdserverpb.Watch/Watch', 'etcdserverpb.Lease/LeaseKeepAlive',
      'etcdserverpb.Cluster/MemberPromote', 'etcdserverpb.Maintenance/Snapshot', 'mvccpb.KeyValue.lease']) {
      expect(ours.has(name)).toBe(true);
    }
  });

  it('matches etcd field for field and method for method', () => {
    const mismatches: string[] = [];
    for (const [name, sig] of ours) {
      if (theirs.get(name) !== sig) mismatches.push(`${name}: ours "${sig}" theirs "${theirs.get(name)}"`);
    }
    expect(mismatches).toEqual([]);
  });

  it('leaves out only what etcd 3.4 does not have', () => {
    // The etcd3 package ships 3.5 additions; 3.4 has none of these.
    const newerThan34 = [/Downgrade/, /AuthStatus/, /MemberListRequest\.linearizable/, /LeaseCheckpoint/, /hashRevision/];
    const missing = [...theirs.keys()].filter((k) => !ours.has(k) && !newerThan34.some((re) => re.test(k)));
    expect(missing).toEqual([]);
  });
});
