import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EtcdServer } from './etcd-server';

type GrpcHandledLabel = 'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code';

/** Calls finished since the last scrape (ServerMetrics.handledCount). */
export interface CallCount {
  n: number;
}

/**
 * The member's Prometheus metrics, with etcd's names where etcd has the metric, so existing dashboards and
 * `etcdctl check datascale` (which reads process_resident_memory_bytes) work unchanged.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private server?: EtcdServer;
  readonly hasLeader = this.observed('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', (s) => (s.proposer.leader !== 0n ? 1 : 0));
  readonly leaderChanges = new Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'The number of leader changes seen.', registers: [this.registry] });
  readonly proposalsCommitted = this.observed('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', (s) => s.proposer.committedIndex);
  readonly proposalsApplied = this.observed('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', (s) => s.proposer.appliedIndex);
  readonly proposalsPending = new Gauge({ name: 'etcd_server_proposals_pending', help: 'The current number of pending proposals to commit.', registers: [this.registry] });
  readonly proposalsFailed = new Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers: [this.registry] });
  readonly walFsync = new Histogram({
    name: 'etcd_disk_wal_fsync_duration_seconds',
    help: 'The latency distributions of fsync called by WAL.',
    buckets: [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192],
    registers: [this.registry],
  });
  readonly backendCommit = new Histogram({
    name: 'etcd_disk_backend_commit_duration_seconds',
    help: 'The latency distributions of commit called by backend.',
    buckets: [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192],
    registers: [this.registry],
  });
  readonly peerRoundTrip = new Histogram({
    name: 'etcd_network_peer_round_trip_time_seconds',
    help: 'Round-Trip-Time histogram between peers',
    labelNames: ['To'],
    buckets: [0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768],
    registers: [this.registry],
  });
  /** the calls counted since the last scrape, per label set (see handledCount) */
  private readonly handledCounts: Array<{ labels: Record<GrpcHandledLabel, string>; count: CallCount }> = [];
  /** go-grpc-prometheus's counter, which etcd registers for its gRPC server. */
  readonly grpcHandled = new Counter({
    name: 'grpc_server_handled_total',
    help: 'Total number of RPCs completed on the server, regardless of success or failure.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'] satisfies GrpcHandledLabel[],
    registers: [this.registry],
    collect: () => this.flushHandled(),
  });
  readonly dbTotalSize = this.observed('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', (s) => s.status().dbSize);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * A count of finished calls for one label set of grpc_server_handled_total, kept as a plain number and added to
   * the counter at scrape time: prom-client builds a string key from the labels on every increment (about 400
   * bytes of garbage per call), which a counter per call does not need.
   */
  handledCount(labels: Record<GrpcHandledLabel, string>): CallCount {
    const count = { n: 0 };
    this.handledCounts.push({ labels, count });
    return count;
  }

  private flushHandled(): void {
    for (const { labels, count } of this.handledCounts) {
      if (count.n === 0) continue;
      this.grpcHandled.inc(labels, count.n);
      count.n = 0;
    }
  }

  /** Lets the gauges read the member at scrape time. */
  observe(server: EtcdServer): void {
    this.server = server;
  }

  private observed(name: string, help: string, read: (s: EtcdServer) => number): Gauge {
    const metrics = this;
    return new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        if (metrics.server) this.set(read(metrics.server));
      },
    });
  }
}
