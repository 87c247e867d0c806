import * as grpc from '@grpc/grpc-js';
import { EtcdError } from '@nestcd/errors';

/** Every failure leaves as a gRPC status; only EtcdErrors carry their own code, anything else is a bug. */
export function toServiceError(err: unknown, log: (msg: string) => void = () => {}): grpc.ServiceError {
  if (err instanceof EtcdError) {
    return Object.assign(new Error(err.message), { code: err.code as number, details: err.message, metadata: new grpc.Metadata() });
  }
  const message = err instanceof Error ? err.message : String(err);
  log(`internal error: ${err instanceof Error ? err.stack : message}`);
  return Object.assign(new Error(message), { code: grpc.status.INTERNAL, details: `nestcd: internal error: ${message}`, metadata: new grpc.Metadata() });
}

export type UnaryHandler = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => void;

/** Wraps an async handler so a thrown or rejected error becomes the call's status. */
export function unary<Req>(fn: (req: Req) => Promise<object> | object, log?: (msg: string) => void): UnaryHandler {
  return (call, callback) => {
    let result: Promise<object>;
    try {
      result = Promise.resolve(fn(call.request as Req));
    } catch (err) {
      callback(toServiceError(err, log));
      return;
    }
    result.then((res) => callback(null, res), (err) => callback(toServiceError(err, log)));
  };
}
