import * as grpc from '@grpc/grpc-js';
import { FrontDoor } from './front-door';

// Overhead of the front door, off by default:
//   FRONT_DOOR_BENCH=20000 npx jest libs/api/src/front-door.bench --testTimeout=600000
// (FRONT_DOOR_BENCH_CONCURRENCY=32 for calls in flight at once.) Sequential unary calls, 64-byte payload,
// client and server in this one process: compare the modes with each other, not with a real deployment.

const calls = Number(process.env.FRONT_DOOR_BENCH ?? 0);
const concurrency = Number(process.env.FRONT_DOOR_BENCH_CONCURRENCY ?? 1);
const maybe = calls > 0 ? it : it.skip;

const id = (b: Buffer): Buffer => b;
const DEF = {
  Unary: {
    path: '/bench.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: id,
    requestDeserialize: id,
    responseSerialize: id,
    responseDeserialize: id,
  },
};
const Client = grpc.makeGenericClientConstructor(DEF, 'Echo');

type Mode = 'direct' | 'fast' | 'rewrite' | 'rewrite-all';

async function run(mode: Mode): Promise<string> {
  const server = new grpc.Server();
  server.addService(DEF, { Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  let door: FrontDoor | undefined;
  let port: number;
  if (mode === 'direct') {
    port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
  } else {
    door = new FrontDoor(server.createConnectionInjector(grpc.ServerCredentials.createInsecure()), { alwaysRewrite: mode === 'rewrite-all' });
    port = await door.listen('127.0.0.1', 0);
  }
  const options = mode === 'rewrite' ? { 'grpc.default_authority': `http://127.0.0.1:${port}` } : {};
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as grpc.Client & Record<string, any>;
  const payload = Buffer.alloc(64, 1);
  const call = () => new Promise<void>((res, rej) => client.Unary(payload, (e: Error | null) => (e ? rej(e) : res())));
  for (let i = 0; i < 500; i++) await call();
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < calls) await call();
  }));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  client.close();
  const closed = door?.close();
  server.forceShutdown();
  await closed;
  return `${mode.padEnd(12)} ${calls} calls x${concurrency}: ${ms.toFixed(0)} ms, ${((ms * 1000) / calls).toFixed(1)} us/call${door ? ` ${JSON.stringify(door.stats)}` : ''}`;
}

describe('front door overhead', () => {
  maybe('direct grpc-js vs front door fast path vs rewritten', async () => {
    const lines: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (const mode of ['direct', 'fast', 'rewrite', 'rewrite-all'] as Mode[]) lines.push(`round ${round} ${await run(mode)}`);
    }
    console.log(lines.join('\n'));
  });
});
