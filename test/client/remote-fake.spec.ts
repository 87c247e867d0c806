// RemoteClient against a scripted gRPC server, for behaviour a real server will not produce on demand.
import * as grpc from '@grpc/grpc-js';
import { RemoteClient } from '@nestcd/client';
import { etcdServices } from '../../libs/client/src/remote/proto';
import { freePort } from '../support/processes';
import { waitFor } from './contract';

describe('RemoteClient keep-alive with a server that drops a renewal', () => {
  let server: grpc.Server;
  let endpoint = '';
  const requests: number[] = [];

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(etcdServices().Lease.service, {
      leaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: string }, unknown>) => {
        call.on('data', (req: { ID: string }) => {
          requests.push(Date.now());
          // the first renewal is lost (as in a failover); the later ones are answered
          if (requests.length > 1) call.write({ header: { revision: '1' }, ID: req.ID, TTL: '3' });
        });
        call.on('end', () => call.end());
      },
    });
    const port = await freePort();
    await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    endpoint = `http://127.0.0.1:${port}`;
  });

  afterAll(() => new Promise<void>((r) => server.tryShutdown(() => r())));

  it('sends again when a renewal goes unanswered, then every TTL/3', async () => {
    const client = new RemoteClient({ endpoints: [endpoint] });
    const confirmed: number[] = [];
    let lost: Error | undefined;
    const ka = client.leaseKeepAlive(7n, { onKeepAlive: (ttl) => confirmed.push(ttl), onLost: (err) => (lost = err) });
    await waitFor(() => confirmed.length >= 3, 8000, 'three confirmations');
    expect(lost).toBeUndefined();
    expect(confirmed.every((ttl) => ttl === 3)).toBe(true);
    // after the first answer, renewals come about every second (TTL 3 s / 3), not in a burst
    const gaps = requests.slice(2).map((t, i) => t - requests[i + 1]);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(800);
    ka.close();
    await client.close();
  });
});
