import type { KvClient } from '@nestcd/client';
import { z } from 'zod';

const isKvClient = (v: unknown): v is KvClient =>
  typeof v === 'object' && v !== null && ['range', 'put', 'txn', 'watch', 'leaseGrant', 'leaseKeepAliveOnce', 'close'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');

const pem = z.union([z.string().min(1), z.instanceof(Buffer)]);

/** Which store the recipes run on. */
export const storeOptionsSchema = z.union([
  /** the engine in-process (the default): in memory, or on a data dir. */
  z.object({ embedded: z.object({ dataDir: z.string().min(1).optional() }).strict() }).strict(),
  /** a nestcd or etcd cluster over gRPC. */
  z
    .object({
      endpoints: z.array(z.string().regex(/^(https?:\/\/)?[^\s/]+:\d+\/?$/, 'an endpoint is http://host:port')).min(1),
      dialTimeoutMs: z.number().int().positive().optional(),
      /** user and password: the client authenticates and sends the token (etcd's auth). */
      credentials: z.object({ user: z.string().min(1), password: z.string() }).strict().optional(),
      /** TLS for https:// endpoints: CA, and a client certificate and key for --client-cert-auth (PEM or file paths). */
      tls: z
        .object({
          ca: pem.optional(),
          cert: pem.optional(),
          key: pem.optional(),
          insecureSkipVerify: z.boolean().optional(),
          serverName: z.string().min(1).optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
  /** Redis (ioredis): leases as expiry; no linearizability across a Redis failover. */
  z
    .object({
      redis: z.union([z.string().regex(/^rediss?:\/\//, 'a redis:// URL'), z.object({ host: z.string().optional(), port: z.number().int().positive().optional(), db: z.number().int().min(0).optional() }).strict()]),
    })
    .strict(),
  /** a client the application made itself (the module does not close it). */
  z.object({ client: z.custom<KvClient>(isKvClient, 'client must implement KvClient') }).strict(),
  /** a factory for the client (the module closes what it returns). */
  z.object({ factory: z.custom<() => KvClient | Promise<KvClient>>((v) => typeof v === 'function', 'factory must be a function') }).strict(),
]);

export type StoreOptions = z.infer<typeof storeOptionsSchema>;

export const coordinationOptionsSchema = z
  .object({
    store: storeOptionsSchema.default({ embedded: {} }),
    /** prefix of every key the recipes write, e.g. "orders/". */
    namespace: z.string().default('nestcd/'),
    session: z
      .object({
        ttlSeconds: z.number().int().min(1).max(9_000_000_000).default(10),
        /** when the session counts as lost, as a fraction of the TTL after the last renewal was sent. */
        lossFraction: z.number().gt(0).lt(1).default(0.8),
      })
      .strict()
      .default({ ttlSeconds: 10, lossFraction: 0.8 }),
    /** how many user callbacks (@OnConfigChange, @OnLeaderChange, ...) may run at once. */
    callbackConcurrency: z.number().int().min(1).default(8),
    /** this process's name in registrations, heartbeats and campaigns (default: hostname-pid). */
    instanceId: z.string().min(1).optional(),
  })
  .strict();

/** What forRoot / forRootAsync accept. */
export type CoordinationModuleOptions = z.input<typeof coordinationOptionsSchema>;
/** The options after validation and defaults. */
export type ResolvedCoordinationOptions = z.output<typeof coordinationOptionsSchema>;

/** Validates options, with every problem in one message. */
export function parseCoordinationOptions(input: unknown): ResolvedCoordinationOptions {
  const r = coordinationOptionsSchema.safeParse(input ?? {});
  if (!r.success) {
    throw new Error(`invalid CoordinationModule options: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return r.data;
}
