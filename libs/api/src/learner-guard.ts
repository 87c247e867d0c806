import * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '@nestcd/server';
import { Errors } from '@nestcd/errors';
import { serviceDefinition } from './proto';
import { toServiceError } from './errors';

/**
 * etcd 3.4's learner interceptors: a learner serves only Status and serializable Range; every other unary call
 * and every stream is refused with `etcdserver: rpc not supported for learner` (clients retry elsewhere). Both
 * the gRPC services and the JSON gateway go through it, as etcd's gateway goes through its own gRPC server.
 */
export function learnerGuard(
  server: EtcdServer, service: string, handlers: Record<string, unknown>, log?: (msg: string) => void,
): grpc.UntypedServiceImplementation {
  const definition = serviceDefinition(service as 'KV');
  const out: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    const fn = handler as (...args: unknown[]) => unknown;
    const def = definition[method];
    if (!def) continue;
    const allowed = (req: { serializable?: boolean }) =>
      (service === 'Maintenance' && method === 'Status') || (service === 'KV' && method === 'Range' && !!req?.serializable);
    if (!def.requestStream && !def.responseStream) {
      out[method] = ((call: grpc.ServerUnaryCall<{ serializable?: boolean }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (server.isLearner && !allowed(call.request)) {
          callback(toServiceError(Errors.notSupportedForLearner(), log));
          return;
        }
        fn(call, callback);
      }) as grpc.UntypedHandleCall;
    } else {
      out[method] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        if (server.isLearner) {
          call.destroy(toServiceError(Errors.notSupportedForLearner(), log) as unknown as Error);
          return;
        }
        fn(call);
      }) as grpc.UntypedHandleCall;
    }
  }
  return out;
}
