import * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '@nestcd/server';
import { headerOut, toBigInt, toNumber } from './codec';
import { toServiceError, unary } from './errors';
import type { Int64 } from './wire';

export function leaseHandlers(server: EtcdServer, log?: (msg: string) => void) {
  return {
    LeaseGrant: unary(async (pb: { TTL: Int64; ID: Int64 }) => {
      const res = await server.leaseGrant(toNumber(pb.TTL), toBigInt(pb.ID));
      return { header: headerOut(server.header(res.revision)), ID: res.id.toString(), TTL: res.ttl, error: '' };
    }, log),
    LeaseRevoke: unary(async (pb: { ID: Int64 }) => {
      const res = await server.leaseRevoke(toBigInt(pb.ID));
      return { header: headerOut(server.header(res.revision)) };
    }, log),
    LeaseTimeToLive: unary(async (pb: { ID: Int64; keys: boolean }) => {
      const res = await server.leaseTimeToLive(toBigInt(pb.ID), pb.keys);
      return {
        header: headerOut(server.header(res.revision)),
        ID: res.id.toString(),
        TTL: res.ttl,
        grantedTTL: res.grantedTtl,
        keys: res.keys,
      };
    }, log),
    LeaseLeases: unary(async () => {
      const ids = await server.leaseLeases();
      return { header: headerOut(server.header()), leases: ids.map((id) => ({ ID: id.toString() })) };
    }, log),
    /** One stream renews any number of leases; an unknown lease answers TTL 0, as etcd does. */
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: Int64 }, object>) => {
      let ended = false;
      call.on('data', (pb: { ID: Int64 }) => {
        let id: bigint;
        try {
          id = toBigInt(pb.ID);
        } catch (err) {
          ended = true;
          call.destroy(toServiceError(err, log));
          return;
        }
        server.leaseRenew(id).then(
          (ttl) => {
            if (!ended) call.write({ header: headerOut(server.header()), ID: id.toString(), TTL: ttl });
          },
          (err) => {
            if (ended) return;
            ended = true;
            call.destroy(toServiceError(err, log));
          },
        );
      });
      const finish = () => {
        if (ended) return;
        ended = true;
        call.end();
      };
      call.on('end', finish);
      call.on('error', () => (ended = true));
      call.on('cancelled', () => (ended = true));
    },
  };
}
