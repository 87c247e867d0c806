import * as grpc from '@grpc/grpc-js';
import { FrontDoor } from './front-door';
import { loadEtcdProto, serviceDefinition } from './proto';
import { FastUnaryMethod, UnaryFastPath } from './unary-fast-path';

// A grpc-js server behind a FrontDoor that splits connections with the fast path (as GrpcServer sets it up).
// grpc-js's own KV handlers answer revision 1; the fast path's answer revision 2, so every response says which
// side served it.

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => grpc.ClientUnaryCall;

const header = (revision: number) => ({ clusterId: '1', memberId: '2', revision, raftTerm: 3 });

describe('UnaryFastPath', () => {
  const kv = serviceDefinition('KV');
  const seen: { peer: string; token: unknown }[] = [];
  let grpcServer: grpc.Server;
  let door: FrontDoor;
  let client: grpc.Client & Record<string, Unary>;
  const MAX_RECEIVE = 64 * 1024;

  const fastPut: grpc.handleUnaryCall<any, any> = (call, cb) => {
    seen.push({ peer: call.getPeer(), token: call.metadata.get('token')[0] });
    const key = (call.request.key as Buffer).toString();
    if (key === 'fail') return cb(Object.assign(new Error('x'), { code: grpc.status.NOT_FOUND, details: 'etcdserver: requested lease not found' }));
    if (key === 'slow') return void setTimeout(() => cb(null, { header: header(2) }), 1000).unref();
    if (key === 'late') return void setTimeout(() => cb(null, { header: header(2) }), 300).unref();
    if (key === 'throw') throw new Error('handler blew up');
    cb(null, { header: header(2) });
  };
  const fastRange: grpc.handleUnaryCall<any, any> = (call, cb) => {
    cb(null, { header: header(2), kvs: [{ key: call.request.key, value: Buffer.alloc(300, 'v'), createRevision: 1, modRevision: 2, version: 1, lease: 0 }], count: 1 });
  };

  beforeAll(async () => {
    grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': MAX_RECEIVE });
    const slow: grpc.handleUnaryCall<any, any> = (_call, cb) => cb(null, { header: header(1) });
    grpcServer.addService(kv, { Range: slow, Put: slow, DeleteRange: slow, Txn: slow, Compact: slow });
    const method = (name: 'Put' | 'Range', handler: grpc.handleUnaryCall<any, any>): [string, FastUnaryMethod] => [
      kv[name].path,
      { deserialize: kv[name].requestDeserialize, serialize: kv[name].responseSerialize as (v: unknown) => Buffer, handler },
    ];
    const fast = new UnaryFastPath(new Map([method('Put', fastPut), method('Range', fastRange)]), MAX_RECEIVE, 2 ** 31 - 1);
    door = new FrontDoor(grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure()), { streams: fast });
    const port = await door.listen('127.0.0.1', 0);
    const KV = loadEtcdProto().etcdserverpb.KV;
    client = new KV(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as never;
  });

  afterAll(async () => {
    client.close();
    grpcServer.forceShutdown();
    await door.close();
  });

  const call = (method: string, req: object, md = new grpc.Metadata(), opts: grpc.CallOptions = {}) =>
    new Promise<any>((resolve, reject) => client[method](req, md, opts, (err, res) => (err ? reject(err) : resolve(res))));

  it('serves its methods itself, with the metadata and peer the handlers expect', async () => {
    const md = new grpc.Metadata();
    md.set('token', 'abc');
    const res = await call('put', { key: Buffer.from('a'), value: Buffer.from('b') }, md);
    expect(res.header.revision).toBe('2');
    expect(seen.at(-1)?.token).toBe('abc');
    expect(seen.at(-1)?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    const range = await call('range', { key: Buffer.from('k') });
    expect(range.kvs[0].value).toEqual(Buffer.alloc(300, 'v'));
    expect(range.header.revision).toBe('2');
  });

  it('leaves every other method to grpc-js', async () => {
    expect((await call('compact', { revision: 1 })).header.revision).toBe('1');
    expect((await call('deleteRange', { key: Buffer.from('a') })).header.revision).toBe('1');
  });

  it('answers a handler error with its code and message', async () => {
    await expect(call('put', { key: Buffer.from('fail') })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND, details: 'etcdserver: requested lease not found',
    });
  });

  it('answers a throwing handler with UNKNOWN instead of crashing', async () => {
    await expect(call('put', { key: Buffer.from('throw') })).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: 'Unknown error' });
    expect((await call('put', { key: Buffer.from('after') })).header.revision).toBe('2');
  });

  it('refuses a message over the receive limit as grpc-js does', async () => {
    await expect(call('put', { key: Buffer.from('big'), value: Buffer.alloc(MAX_RECEIVE + 1) })).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/^Received message larger than max \(\d+ vs 65536\)$/),
    });
    // and the connection goes on serving
    expect((await call('put', { key: Buffer.from('after') })).header.revision).toBe('2');
  });

  it('ends a call at its deadline', async () => {
    await expect(call('put', { key: Buffer.from('slow') }, new grpc.Metadata(), { deadline: Date.now() + 200 })).rejects.toMatchObject({
      code: grpc.status.DEADLINE_EXCEEDED,
    });
  });

  it('drops the answer to a call the client cancelled, and keeps serving', async () => {
    const rejected = new Promise((resolve) => {
      const c = client.put({ key: Buffer.from('late') }, new grpc.Metadata(), {}, (err) => resolve(err?.code));
      setTimeout(() => c.cancel(), 50);
    });
    expect(await rejected).toBe(grpc.status.CANCELLED);
    await new Promise((resolve) => setTimeout(resolve, 400)); // the handler answers the cancelled call meanwhile
    expect((await call('put', { key: Buffer.from('after') })).header.revision).toBe('2');
  });

  it('serves many concurrent calls on one connection', async () => {
    const all = await Promise.all(Array.from({ length: 200 }, (_, i) => call('put', { key: Buffer.from(`k${i}`) })));
    expect(all.every((r) => r.header.revision === '2')).toBe(true);
  });
});
