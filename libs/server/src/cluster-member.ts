import { ConfChange, ConfChangeType, ConfState, SnapshotStatus } from '@nestcd/raft';
import { PeerTransport, PeerTransportOptions, TransportFaults } from '@nestcd/transport';
import { encodePublish, EntryKind, Member } from './member-state';
import { RaftMember, RaftMemberOptions } from './raft-member';

/** etcd's words when a removed member learns of its removal (it then stops). */
export const REMOVED_MESSAGE = 'the member has been permanently removed from the cluster';

export interface ClusterOptions {
  memberId: bigint;
  clusterId: bigint;
  /** This member's name (published with its client URLs, as etcd's member attributes). */
  name: string;
  /** --listen-peer-urls */
  listenPeerUrls: string[];
  /** The replicated member table (changes as membership changes are applied or a snapshot installed). */
  members: () => Member[];
  /** IDs removed from the cluster: their connections are refused. */
  removed: () => Set<bigint>;
  /** This member's advertised client URLs, published through the log on every start. */
  clientUrls: string[];
  /** Publish on start even while this member is alone (a member that joined an existing cluster). */
  alwaysPublish?: boolean;
  /** This member was removed from the cluster: it has stopped and will not serve again. */
  onRemoved?: (reason: string) => void;
  /** Encodes the member table for members joining with --initial-cluster-state existing. */
  clusterInfo?: () => Buffer;
  log?: (msg: string) => void;
  /** TLS for https:// peer URLs. */
  tls?: PeerTransportOptions['tls'];
}

/**
 * A RaftMember of a multi-member cluster: its Raft messages travel over a PeerTransport, which listens on
 * --listen-peer-urls while the member has peers and hands every inbound message to Raft. The transport's
 * peers follow the replicated member table: membership changes and installed snapshots add, update and remove
 * them. On start the member publishes its name and client URLs through the log (etcd's publish).
 */
export class ClusterRaftMember extends RaftMember {
  readonly transport: PeerTransport;
  private running = false;
  private transportStarted?: Promise<void>;
  private publishing?: Promise<void>;
  private readonly peerUrls = new Map<bigint, string>();
  private removedSelf = false;
  private readonly tickMs: number;

  constructor(opts: Omit<RaftMemberOptions, 'transport'>, private readonly cluster: ClusterOptions) {
    let self: ClusterRaftMember | undefined;
    const transport = new PeerTransport({
      memberId: cluster.memberId,
      clusterId: cluster.clusterId,
      listenUrls: cluster.listenPeerUrls,
      tls: cluster.tls,
      log: cluster.log,
      onMessage: (msg) => self?.step(msg),
      onUnreachable: (id) => self?.reportUnreachable(id),
      onSnapshotStatus: (id, ok) => self?.reportSnapshotStatus(id, ok),
      acceptPeer: (id) => (cluster.removed().has(id) ? REMOVED_MESSAGE : undefined),
      onRefused: (_id, reason) => {
        if (reason.includes(REMOVED_MESSAGE)) self?.onRemovedFromCluster();
      },
      clusterInfo: cluster.clusterInfo,
    });
    super({
      ...opts,
      transport,
      onConfChange: (cc, confState, context) => {
        self?.onMembershipChange(cc);
        opts.onConfChange?.(cc, confState, context);
      },
      onSnapshotInstalled: (confState: ConfState) => {
        self?.syncPeers();
        if (cluster.removed().has(cluster.memberId)) self?.onRemovedFromCluster();
        opts.onSnapshotInstalled?.(confState);
      },
    });
    self = this;
    this.transport = transport;
    this.tickMs = opts.tickMs;
    this.syncPeers();
  }

  override async start(): Promise<void> {
    this.running = true;
    if (this.peerUrls.size > 0 || this.cluster.alwaysPublish) {
      await this.startTransport();
    } else {
      // A lone member listens too (members joining ask it for the member table), but as long as it has no
      // peers a peer port it cannot bind is only a warning; it tries again when a member is added.
      await this.startTransport().catch((err: Error) => {
        this.cluster.log?.(`warning: ${err.message} (no peers yet)`);
        this.transportStarted = undefined;
      });
    }
    const caughtUp = super.start();
    if (this.peerUrls.size > 0 || this.cluster.alwaysPublish) this.publishing = this.publish();
    return caughtUp;
  }

  override async stop(): Promise<void> {
    this.running = false;
    await super.stop();
    await this.publishing;
    await this.transportStarted?.catch(() => undefined);
    await this.transport.stop();
  }

  /** Test fault switch: the transport's partition set and drop filter. */
  get faults(): TransportFaults {
    return this.transport.faults;
  }

  /** Since when the connection to `id` has been up (etcd's ActiveSince); undefined while down. */
  activeSince(id: bigint): number | undefined {
    return this.transport.activeSince(id);
  }

  private startTransport(): Promise<void> {
    this.transportStarted ??= this.transport.start().then(() => undefined);
    return this.transportStarted;
  }

  /**
   * Adds and updates the transport's peers from the member table, and drops removed members. A peer missing
   * from the table is kept: a snapshot from the leader may predate members added since (even the leader
   * itself), whose adds the log after the snapshot replays; without them this member could not answer.
   */
  private syncPeers(): void {
    const members = this.cluster.members().filter((m) => m.id !== this.cluster.memberId);
    const wanted = new Map(members.map((m) => [m.id, m.peerUrls]));
    const removed = this.cluster.removed();
    for (const id of [...this.peerUrls.keys()]) {
      if (!removed.has(id)) continue;
      this.transport.removePeer(id);
      this.peerUrls.delete(id);
    }
    for (const [id, urls] of wanted) {
      if (removed.has(id)) continue;
      const key = urls.join(',');
      const had = this.peerUrls.get(id);
      if (had === key) continue;
      if (had === undefined) this.transport.addPeer(id, urls);
      else this.transport.updatePeer(id, urls);
      this.peerUrls.set(id, key);
    }
    if (this.running && this.peerUrls.size > 0 && !this.transportStarted) {
      void this.startTransport().catch((err: Error) => this.cluster.log?.(`cannot start the peer transport: ${err.message}`));
    }
  }

  private onMembershipChange(cc: ConfChange): void {
    this.syncPeers();
    if (cc.type === ConfChangeType.RemoveNode && cc.nodeId === this.cluster.memberId) this.onRemovedFromCluster();
  }

  /** etcd stops a removed member after ten ticks, so its last messages (the commit) still go out. */
  private onRemovedFromCluster(): void {
    if (this.removedSelf) return;
    this.removedSelf = true;
    this.cluster.log?.(REMOVED_MESSAGE);
    setTimeout(() => {
      void this.stop().finally(() => this.cluster.onRemoved?.(REMOVED_MESSAGE));
    }, 10 * this.tickMs).unref();
  }

  private reportUnreachable(id: bigint): void {
    if (!this.running) return;
    this.node.reportUnreachable(id);
  }

  private reportSnapshotStatus(id: bigint, ok: boolean): void {
    if (!this.running) return;
    this.node.reportSnapshot(id, ok ? SnapshotStatus.Finish : SnapshotStatus.Failure);
  }

  /** etcd's publish: retried (no leader yet, leader changed, timed out) until applied or the member stops. */
  private async publish(): Promise<void> {
    const payload = encodePublish(this.cluster.memberId, this.cluster.clientUrls, this.cluster.name);
    const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
    while (this.running) {
      if (this.leader === 0n) {
        await sleep(50);
        continue;
      }
      try {
        await this.propose(EntryKind.Publish, payload);
        this.cluster.log?.(`published client URLs ${this.cluster.clientUrls.join(',')} of member ${this.cluster.memberId.toString(16)}`);
        return;
      } catch (err) {
        if (!this.running) return;
        this.cluster.log?.(`publish failed, retrying: ${(err as Error).message}`);
        await sleep(200);
      }
    }
  }
}
