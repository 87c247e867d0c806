import { SnapshotStatus } from '@nestcd/raft';
import { PeerTransport, PeerTransportOptions } from '@nestcd/transport';
import { encodePublish, EntryKind, Member } from './member-state';
import { RaftMember, RaftMemberOptions } from './raft-member';

export interface ClusterOptions {
  memberId: bigint;
  clusterId: bigint;
  /** --listen-peer-urls */
  listenPeerUrls: string[];
  /** The other members, reached at their peer URLs. */
  peers: Member[];
  /** This member's advertised client URLs, published through the log on every start. */
  clientUrls: string[];
  log?: (msg: string) => void;
  /** TLS for https:// peer URLs. */
  tls?: PeerTransportOptions['tls'];
}

/**
 * A RaftMember of a multi-member cluster: its Raft messages travel over a PeerTransport, which listens on
 * --listen-peer-urls while the member runs and hands every inbound message to Raft. On start the member
 * publishes its client URLs through the log (etcd's publish), retrying until one is applied.
 */
export class ClusterRaftMember extends RaftMember {
  readonly transport: PeerTransport;
  private running = false;
  private publishing?: Promise<void>;

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
    });
    super({ ...opts, transport });
    self = this;
    this.transport = transport;
    for (const p of cluster.peers) transport.addPeer(p.id, p.peerUrls);
  }

  override async start(): Promise<void> {
    await this.transport.start();
    this.running = true;
    const caughtUp = super.start();
    this.publishing = this.publish();
    return caughtUp;
  }

  override async stop(): Promise<void> {
    this.running = false;
    await super.stop();
    await this.publishing;
    await this.transport.stop();
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
    const payload = encodePublish(this.cluster.memberId, this.cluster.clientUrls);
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
