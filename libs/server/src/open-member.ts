import type { NestcdConfig } from '@nestcd/config';
import { MvccStore } from '@nestcd/mvcc';
import { MemoryStorage } from '@nestcd/raft';
import { EtcdServer, EtcdServerOptions, Member } from './etcd-server';
import { clusterIdOf, memberIdOf } from './ids';
import { MemberState } from './member-state';
import { RaftMember } from './raft-member';

export interface OpenMemberOptions extends EtcdServerOptions {
  log?: (msg: string) => void;
}

/** The initial members as --initial-cluster names them; IDs derive from peer URLs and the cluster token. */
export function initialMembers(config: NestcdConfig): Member[] {
  return [...config.initialCluster.entries()].map(([name, peerUrls]) => ({
    id: memberIdOf(peerUrls, config.initialClusterToken),
    name,
    peerUrls,
    clientUrls: name === config.name ? config.advertiseClientUrls : [],
    isLearner: false,
  }));
}

/**
 * Builds a member from its configuration: the keyspace, the Raft log it is replicated through, and the
 * server surface on top. A new member starts from a snapshot at index 1 holding the initial configuration,
 * the same on every founding member.
 */
export async function openMember(config: NestcdConfig, options: OpenMemberOptions = {}): Promise<EtcdServer> {
  const clock = options.clock ?? Date.now;
  const members = initialMembers(config);
  const memberId = members.find((m) => m.name === config.name)!.id;
  const clusterId = clusterIdOf(members.map((m) => m.id));
  const minLeaseTtl = Math.ceil((3 * config.electionTimeout) / 2 / 1000);
  const mvccOptions = { clock, minLeaseTtl };
  const state = new MemberState(new MvccStore(mvccOptions), mvccOptions);

  const storage = new MemoryStorage();
  const voters = members.filter((m) => !m.isLearner).map((m) => m.id);
  storage.applySnapshot({ data: state.snapshot(), metadata: { index: 1, term: 1, confState: { voters, learners: [] } } });
  storage.setHardState({ term: 1, vote: 0n, commit: 1 });

  const proposer = new RaftMember({
    id: memberId,
    storage,
    stateMachine: state,
    tickMs: config.heartbeatInterval,
    electionTicks: Math.max(2, Math.round(config.electionTimeout / config.heartbeatInterval)),
    snapshotCount: config.snapshotCount,
    // etcd's request timeout: 5 s plus two election timeouts.
    requestTimeoutMs: 5000 + 2 * config.electionTimeout,
    rand: Math.random,
    log: options.log,
    // A new leader gives every lease a full TTL rather than expiring any early (etcd's promote).
    onLeaderChange: (_leader, isSelf) => {
      if (isSelf) state.store.renewAllLeases();
    },
  });
  return new EtcdServer(config, { state, proposer, memberId, clusterId, members }, options);
}
