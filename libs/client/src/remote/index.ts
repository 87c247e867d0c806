export { RemoteClient } from './remote-client';
export type { RemoteCallOptions } from './remote-client';
export type { RemoteClientOptions, TlsOptions, CallOptions } from './connection';
export type * from './admin-types';
export { prefixEnd } from './namespace';
