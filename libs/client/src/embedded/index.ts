export { EmbeddedClient, createEmbeddedClient } from './embedded-client';
export type { EmbeddedClientOptions } from './embedded-client';
