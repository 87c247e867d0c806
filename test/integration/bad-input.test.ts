import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '@nestcd/api';
import { connect } from 'node:net';
import { InProcessMember, startInProcess } from './in-process';

// Bad input at the client port: each request gets etcd's error or a clean close, the server keeps serving,
// and nothing is half-applied. (test/compat proves the same messages against a real etcd.)

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res: any) => void) => void;

describe('bad input on the gRPC port', () => {
  let member: InProcessMember;
  let endpoint: string;
  let kv: grpc.Client & Record<string, Unary>;
  let lease: grpc.Client & Record<string, Unary>;
  const call = (c: Record<string, Unary>, method: string, req: object) =>
    new Promise<any>((resolve, reject) => c[method](req, (err, res) => (err ? reject(err) : resolve(res))));
  const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected the call to fail'); }, (e: grpc.ServiceError) => e);

  beforeAll(async () => {
    member = await startInProcess(['--max-txn-ops', '8']);
    endpoint = member.endpoint;
    const pkg = loadEtcdProto().etcdserverpb;
    kv = new pkg.KV(endpoint, grpc.credentials.createInsecure()) as never;
    lease = new pkg.Lease(endpoint, grpc.credentials.createInsecure()) as never;
  });

  afterAll(async () => {
    kv?.close();
    lease?.close();
    await member?.close();
  });

  const revision = async () => Number((await call(kv, 'Range', { key: Buffer.from('probe') })).header.revision);

  it('rejects an empty key, an unknown lease and conflicting put flags with etcd errors', async () => {
    const before = await revision();
    expect((await failure(call(kv, 'Put', { key: Buffer.alloc(0), value: Buffer.from('v') }))).details).toBe('etcdserver: key is not provided');
    const unknownLease = await failure(call(kv, 'Put', { key: Buffer.from('k'), value: Buffer.from('v'), lease: '12345' }));
    expect(unknownLease.code).toBe(grpc.status.NOT_FOUND);
    expect(unknownLease.details).toBe('etcdserver: requested lease not found');
    expect((await failure(call(kv, 'Put', { key: Buffer.from('k'), value: Buffer.from('v'), ignoreValue: true }))).details).toBe('etcdserver: value is provided');
    expect((await failure(call(lease, 'LeaseRevoke', { ID: '999' }))).details).toBe('etcdserver: requested lease not found');
    expect(await revision()).toBe(before);
  });

  it('answers a range whose end is before its key with nothing', async () => {
    await call(kv, 'Put', { key: Buffer.from('m'), value: Buffer.from('1') });
    const res = await call(kv, 'Range', { key: Buffer.from('z'), rangeEnd: Buffer.from('a') });
    expect(res.kvs).toEqual([]);
    expect(Number(res.count)).toBe(0);
  });

  it('refuses a value over --max-request-bytes and one over the gRPC limit, and applies neither', async () => {
    const before = await revision();
    const tooLarge = await failure(call(kv, 'Put', { key: Buffer.from('big'), value: Buffer.alloc(1.6 * 1024 * 1024) }));
    expect(tooLarge.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tooLarge.details).toBe('etcdserver: request is too large');
    const huge = await failure(call(kv, 'Put', { key: Buffer.from('big'), value: Buffer.alloc(3 * 1024 * 1024) }));
    expect(huge.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(await revision()).toBe(before);
  });

  it('refuses a txn with too many ops or a key written twice, changing nothing', async () => {
    const before = await revision();
    const put = (k: string) => ({ requestPut: { key: Buffer.from(k), value: Buffer.from('x') } });
    const tooMany = await failure(call(kv, 'Txn', { success: Array.from({ length: 9 }, (_, i) => put(`t${i}`)) }));
    expect(tooMany.details).toBe('etcdserver: too many operations in txn request');
    const dup = await failure(call(kv, 'Txn', { success: [put('d'), put('d')] }));
    expect(dup.details).toBe('etcdserver: duplicate key given in txn request');
    const badLease = await failure(call(kv, 'Txn', { success: [put('ok1'), { requestPut: { key: Buffer.from('ok2'), value: Buffer.from('x'), lease: '77' } }] }));
    expect(badLease.details).toBe('etcdserver: requested lease not found');
    expect(await revision()).toBe(before);
    expect((await call(kv, 'Range', { key: Buffer.from('ok1') })).kvs).toEqual([]);
  });

  it('answers bytes that are not the request message with an error, not a crash', async () => {
    const raw = new grpc.Client(endpoint, grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest('/etcdserverpb.KV/Put', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        (e) => resolve(e as grpc.ServiceError)),
    );
    raw.close();
    expect(err).toBeTruthy();
    expect(err.code).not.toBe(grpc.status.OK);
    expect(await revision()).toBeGreaterThan(0);
  });

  it('closes a connection that sends garbage and keeps serving others', async () => {
    const [host, port] = endpoint.split(':');
    const closed = await new Promise<boolean>((resolve) => {
      const sock = connect(Number(port), host, () => sock.write(Buffer.from('GARBAGE\r\n\r\n\x00\x01\x02not http2 at all')));
      sock.on('data', () => {});
      const timer = setTimeout(() => { sock.destroy(); resolve(false); }, 5000);
      sock.on('close', () => { clearTimeout(timer); resolve(true); });
      sock.on('error', () => {});
    });
    expect(closed).toBe(true);
    await call(kv, 'Put', { key: Buffer.from('after-garbage'), value: Buffer.from('fine') });
    expect((await call(kv, 'Range', { key: Buffer.from('after-garbage') })).kvs[0].value.toString()).toBe('fine');
  });
});
