import { z } from 'zod';

const url = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'unix:' || u.protocol === 'unixs:') && (u.protocol.startsWith('unix') || u.port !== '' || u.hostname !== '');
  } catch {
    return false;
  }
}, { message: 'must be a URL like http://127.0.0.1:2379' });

const urlList = z.array(url).min(1, 'must list at least one URL');

/** initial-cluster: name=url[,name=url...]; a name may appear several times for several peer URLs. */
const initialCluster = z.string().transform((s, ctx) => {
  const members = new Map<string, string[]>();
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq);
    const peer = part.slice(eq + 1);
    if (eq <= 0 || !url.safeParse(peer).success) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not of the form name=http://host:port` });
      return z.NEVER;
    }
    members.set(name, [...(members.get(name) ?? []), peer]);
  }
  return members;
});

const durationMs = (def: number) => z.coerce.number().int().positive().default(def);

/** The validated configuration of one member; field names follow etcd's flags in camelCase. */
export const ConfigSchema = z.object({
  name: z.string().min(1).default('default'),
  dataDir: z.string().min(1).optional(),
  walDir: z.string().optional(),
  snapshotCount: z.coerce.number().int().nonnegative().default(100000),
  heartbeatInterval: durationMs(100),
  electionTimeout: durationMs(1000),
  listenPeerUrls: urlList.default(['http://localhost:2380']),
  listenClientUrls: urlList.default(['http://localhost:2379']),
  maxSnapshots: z.coerce.number().int().nonnegative().default(5),
  maxWals: z.coerce.number().int().nonnegative().default(5),
  quotaBackendBytes: z.coerce.number().int().nonnegative().default(0),
  maxTxnOps: z.coerce.number().int().positive().default(128),
  maxRequestBytes: z.coerce.number().int().positive().default(1.5 * 1024 * 1024),
  initialAdvertisePeerUrls: urlList.default(['http://localhost:2380']),
  initialCluster: initialCluster.optional(),
  initialClusterState: z.enum(['new', 'existing']).default('new'),
  initialClusterToken: z.string().default('etcd-cluster'),
  advertiseClientUrls: urlList.default(['http://localhost:2379']),
  strictReconfigCheck: z.boolean().default(true),
  preVote: z.boolean().default(false),
  autoCompactionRetention: z.string().default('0'),
  autoCompactionMode: z.enum(['periodic', 'revision']).default('periodic'),
  enableV2: z.boolean().default(false),
  certFile: z.string().optional(),
  keyFile: z.string().optional(),
  clientCertAuth: z.boolean().default(false),
  trustedCaFile: z.string().optional(),
  peerCertFile: z.string().optional(),
  peerKeyFile: z.string().optional(),
  peerClientCertAuth: z.boolean().default(false),
  peerTrustedCaFile: z.string().optional(),
  autoTls: z.boolean().default(false),
  peerAutoTls: z.boolean().default(false),
  cipherSuites: z.array(z.string()).default([]),
  authTokenTtl: z.coerce.number().int().positive().default(300),
  logLevel: z.enum(['debug', 'info', 'warn', 'error', 'panic', 'fatal']).default('info'),
  debug: z.boolean().default(false),
}).transform((c) => ({
  ...c,
  dataDir: c.dataDir ?? `${c.name}.nestcd`,
  initialCluster: c.initialCluster ?? new Map([[c.name, c.initialAdvertisePeerUrls]]),
}));

export type NestcdConfig = z.output<typeof ConfigSchema>;
