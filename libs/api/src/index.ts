export { EtcdGrpcServer, GRPC_OVERHEAD_BYTES } from './grpc-server';
export type { GrpcServerOptions } from './grpc-server';
export { loadEtcdProto, PROTO_DIR, PROTO_OPTIONS, serviceDefinition } from './proto';
export { toServiceError } from './errors';
export { HttpGateway } from './http-gateway';
export { AuthGuard } from './auth-guard';
export { authHandlers } from './auth.service';
export { clientTlsFromConfig } from './client-tls';
