// The etcd 3.4 flags nestcd accepts, by kind. Every flag also reads ETCD_<UPPER_SNAKE> from the environment
// and a YAML --config-file key of the same name, as etcd does.

export type FlagKind = 'string' | 'bool' | 'int' | 'list';

export interface FlagSpec {
  kind: FlagKind;
  description: string;
  /** accepted for compatibility with existing etcd configs; nestcd does not act on it (yet). */
  inert?: boolean;
}

export const FLAGS: Record<string, FlagSpec> = {
  // member
  name: { kind: 'string', description: 'Human-readable name for this member.' },
  'data-dir': { kind: 'string', description: 'Path to the data directory (default ${name}.nestcd).' },
  'wal-dir': { kind: 'string', description: 'Path to the dedicated WAL directory.' },
  'snapshot-count': { kind: 'int', description: 'Number of committed transactions to trigger a snapshot to disk.' },
  'heartbeat-interval': { kind: 'int', description: 'Time (in milliseconds) of a heartbeat interval.' },
  'election-timeout': { kind: 'int', description: 'Time (in milliseconds) for an election to timeout.' },
  'listen-peer-urls': { kind: 'list', description: 'List of URLs to listen on for peer traffic.' },
  'listen-client-urls': { kind: 'list', description: 'List of URLs to listen on for client traffic.' },
  'max-snapshots': { kind: 'int', description: 'Maximum number of snapshot files to retain (0 is unlimited).' },
  'max-wals': { kind: 'int', description: 'Maximum number of wal files to retain (0 is unlimited).' },
  'quota-backend-bytes': { kind: 'int', description: 'Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).' },
  'max-txn-ops': { kind: 'int', description: 'Maximum number of operations permitted in a transaction.' },
  'max-request-bytes': { kind: 'int', description: 'Maximum client request size in bytes the server will accept.' },
  'grpc-keepalive-min-time': { kind: 'string', description: 'Minimum interval duration that a client should wait before pinging server.', inert: true },
  'grpc-keepalive-interval': { kind: 'string', description: 'Frequency duration of server-to-client ping to check if a connection is alive.', inert: true },
  'grpc-keepalive-timeout': { kind: 'string', description: 'Additional duration of wait before closing a non-responsive connection.', inert: true },
  'listen-metrics-urls': { kind: 'list', description: 'List of additional URLs to listen on that will respond to both the /metrics and /health endpoints.', inert: true },
  cors: { kind: 'string', description: 'Comma-separated white list of origins for CORS.', inert: true },
  // clustering
  'initial-advertise-peer-urls': { kind: 'list', description: "List of this member's peer URLs to advertise to the rest of the cluster." },
  'initial-cluster': { kind: 'string', description: 'Initial cluster configuration for bootstrapping.' },
  'initial-cluster-state': { kind: 'string', description: "Initial cluster state ('new' or 'existing')." },
  'initial-cluster-token': { kind: 'string', description: 'Initial cluster token for the etcd cluster during bootstrap.' },
  'advertise-client-urls': { kind: 'list', description: "List of this member's client URLs to advertise to the public." },
  'strict-reconfig-check': { kind: 'bool', description: 'Reject reconfiguration requests that would cause quorum loss.' },
  'pre-vote': { kind: 'bool', description: 'Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.' },
  'auto-compaction-retention': { kind: 'string', description: "Auto compaction retention length. 0 means disable auto compaction." },
  'auto-compaction-mode': { kind: 'string', description: "Interpret 'auto-compaction-retention' one of: periodic|revision." },
  'enable-v2': { kind: 'bool', description: 'Accept etcd V2 client requests.' },
  discovery: { kind: 'string', description: 'Discovery URL used to bootstrap the cluster.', inert: true },
  // security
  'cert-file': { kind: 'string', description: 'Path to the client server TLS cert file.' },
  'key-file': { kind: 'string', description: 'Path to the client server TLS key file.' },
  'client-cert-auth': { kind: 'bool', description: 'Enable client cert authentication.' },
  'client-crl-file': { kind: 'string', description: 'Path to the client certificate revocation list file.', inert: true },
  'trusted-ca-file': { kind: 'string', description: 'Path to the client server TLS trusted CA cert file.' },
  'auto-tls': { kind: 'bool', description: 'Client TLS using generated certificates.' },
  'peer-cert-file': { kind: 'string', description: 'Path to the peer server TLS cert file.' },
  'peer-key-file': { kind: 'string', description: 'Path to the peer server TLS key file.' },
  'peer-client-cert-auth': { kind: 'bool', description: 'Enable peer client cert authentication.' },
  'peer-trusted-ca-file': { kind: 'string', description: 'Path to the peer server TLS trusted CA file.' },
  'peer-auto-tls': { kind: 'bool', description: 'Peer TLS using generated certificates.' },
  'cipher-suites': { kind: 'list', description: 'Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).' },
  // logging and profiling
  logger: { kind: 'string', description: "Specify 'zap' for structured logging or 'capnslog'.", inert: true },
  'log-outputs': { kind: 'string', description: "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd.", inert: true },
  'log-level': { kind: 'string', description: 'Configures log level. Only supports debug, info, warn, error, panic, or fatal.' },
  debug: { kind: 'bool', description: 'Enable debug-level logging.' },
  'enable-pprof': { kind: 'bool', description: 'Enable runtime profiling data via HTTP server.', inert: true },
  metrics: { kind: 'string', description: "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.", inert: true },
  // auth
  'auth-token': { kind: 'string', description: 'Specify a v3 authentication token type and its options.', inert: true },
  'auth-token-ttl': { kind: 'int', description: 'The lifetime in seconds of the auth token.' },
  // misc
  'config-file': { kind: 'string', description: 'Path to the server configuration file (YAML, flag names as keys).' },
  version: { kind: 'bool', description: 'Print the version and exit.' },
  help: { kind: 'bool', description: 'Show this help and exit.' },
};

/** etcd's environment variable for a flag: data-dir -> ETCD_DATA_DIR. */
export const envName = (flag: string): string => `ETCD_${flag.toUpperCase().replace(/-/g, '_')}`;
