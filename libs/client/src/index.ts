// @nestcd/client: the KvClient interface, ClientError, the remote (gRPC) backend and factories for every backend.
// This entry loads no server code and no ioredis (checked by test/client/isolation.spec.ts): the embedded backend
// is '@nestcd/client/embedded', the Redis backend '@nestcd/client/redis' (or the create*Client factories below,
// which load them on first use).
export * from './types';
export { ClientError, ClientErrorCode } from './errors';
export * from './remote';
export * from './factories';
