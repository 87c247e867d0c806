import type { NestcdConfig } from '@nestcd/config';
import { Errors } from '@nestcd/errors';
import { MvccOptions, MvccStore } from '@nestcd/mvcc';
import { HardState, MemoryStorage, Snapshot, SnapshotMetadata } from '@nestcd/raft';
import { defaultFileSystem, ensureDataDir, FileSystem, Snapshotter, Wal } from '@nestcd/storage';
import { fetchClusterInfo } from '@nestcd/transport';
import { EtcdServer, EtcdServerOptions } from './etcd-server';
import { clusterIdOf, memberIdOf } from './ids';
import { Member, MemberState } from './member-state';
import { ServerMetrics } from './metrics';
import { ClusterRaftMember } from './cluster-member';
import { clientTlsMaterial, peerTlsFromConfig } from './peer-tls';
import type { PeerTransportOptions } from '@nestcd/transport';
import { LeaseForwarder } from './lease-forwarder';
import { RaftMemberOptions, RaftPersistence, SNAPSHOT_DATA_ON_DISK } from './raft-member';

export interface OpenMemberOptions extends EtcdServerOptions {
  log?: (msg: string) => void;
  /** Keep everything in memory (tests); the default keeps it under --data-dir. */
  inMemory?: boolean;
  /** File access for the WAL and snapshots (tests inject faults here). */
  fs?: FileSystem;
  /** WAL segment size (tests use small ones). */
  walSegmentBytes?: number;
  /** The member was removed from its cluster and has stopped itself (the process should exit). */
  onRemoved?: (reason: string) => void;
  /** TLS for https:// peer URLs; by default what the --peer-* TLS flags say. */
  peerTls?: PeerTransportOptions['tls'];
}

/** What a member answers a joining member's cluster-info request with (etcd's GET /members on a peer URL). */
interface ClusterInfo {
  clusterId: string;
  members: Array<{ id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }>;
}

function encodeClusterInfo(clusterId: bigint, members: Member[]): Buffer {
  const info: ClusterInfo = {
    clusterId: clusterId.toString(),
    members: members.map((m) => ({ id: m.id.toString(), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: m.isLearner })),
  };
  return Buffer.from(JSON.stringify(info));
}

/**
 * --initial-cluster-state existing: ask the cluster (any other member of --initial-cluster) for its member
 * table, check that --initial-cluster describes it (etcd's ValidateClusterAndAssignIDs, with its wording), and
 * take the cluster's and this member's IDs from it.
 */
async function joinExistingCluster(config: NestcdConfig, log?: (msg: string) => void): Promise<{ clusterId: bigint; memberId: bigint; members: Member[] }> {
  const local = initialMembers(config);
  const ownUrls = config.initialCluster.get(config.name) ?? [];
  const sameUrls = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((u, i) => u === [...b].sort()[i]);
  const remoteUrls = local.filter((m) => m.name !== config.name).flatMap((m) => m.peerUrls);
  let info: ClusterInfo | undefined;
  const errors: string[] = [];
  for (const url of remoteUrls) {
    try {
      info = JSON.parse((await fetchClusterInfo(url, 2000)).toString()) as ClusterInfo;
      break;
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (!info) {
    for (const e of errors) log?.(`could not get cluster information: ${e}`);
    throw new Error('cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs');
  }
  const existing: Member[] = info.members.map((m) => ({
    id: BigInt(m.id), name: m.name, peerUrls: m.peerURLs, clientUrls: m.clientURLs, isLearner: m.isLearner,
  }));
  const describe = existing.map((m) => `${m.name || m.id.toString(16)}=${m.peerUrls.join(',')}`).join(',');
  if (existing.length !== local.length) throw new Error(`error validating peerURLs ${describe}: member count is unequal`);
  for (const m of existing) {
    if (!local.some((l) => sameUrls(l.peerUrls, m.peerUrls))) {
      throw new Error(`error validating peerURLs ${describe}: PeerURLs: no match found for existing member (${m.id.toString(16)}, ${m.peerUrls.join(',')})`);
    }
  }
  const self = existing.find((m) => sameUrls(m.peerUrls, ownUrls));
  if (!self) throw new Error(`error validating peerURLs ${describe}: member count is unequal`);
  return { clusterId: BigInt(info.clusterId), memberId: self.id, members: existing };
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

interface Recovered {
  state: MemberState;
  storage: MemoryStorage;
  memberId: bigint;
  clusterId: bigint;
  persistence?: RaftPersistence;
  close?: () => Promise<void>;
  /** A new member that joined an existing cluster (it publishes at once, even before it has peers' log). */
  joined?: boolean;
}

/**
 * Builds a member from its configuration: the keyspace, the Raft log it is replicated through, and the
 * server surface on top. A new member starts from a snapshot at index 1 holding the initial configuration,
 * the same on every founding member. A member whose data dir already holds a WAL ignores the initial-*
 * flags (as etcd does) and recovers: newest snapshot, then every WAL entry after it.
 */
export async function openMember(config: NestcdConfig, options: OpenMemberOptions = {}): Promise<EtcdServer> {
  const clock = options.clock ?? Date.now;
  const minLeaseTtl = Math.ceil((3 * config.electionTimeout) / 2 / 1000);
  const mvccOptions: MvccOptions = { clock, minLeaseTtl };
  const metrics = new ServerMetrics();
  const recovered = options.inMemory ? bootstrapInMemory(config, mvccOptions) : await openDataDir(config, mvccOptions, options, metrics);
  const { state, storage, memberId, clusterId } = recovered;
  let server: EtcdServer | undefined;

  const raftOptions: RaftMemberOptions = {
    id: memberId,
    storage,
    stateMachine: state,
    persistence: recovered.persistence,
    tickMs: config.heartbeatInterval,
    electionTicks: Math.max(2, Math.round(config.electionTimeout / config.heartbeatInterval)),
    snapshotCount: config.snapshotCount,
    // etcd's request timeout: 5 s plus two election timeouts.
    requestTimeoutMs: 5000 + 2 * config.electionTimeout,
    rand: Math.random,
    log: options.log,
    // A new leader gives every lease a full TTL rather than expiring any early (etcd's promote).
    onLeaderChange: (leader, isSelf) => {
      if (leader !== 0n) metrics.leaderChanges.inc();
      if (isSelf) state.store.renewAllLeases();
    },
  };
  // Members talk over the peer transport, whose peers follow the replicated member table (a lone member
  // listens for peers only once one is added).
  const proposer = new ClusterRaftMember(raftOptions, {
    memberId,
    clusterId,
    name: config.name,
    listenPeerUrls: config.listenPeerUrls,
    members: () => state.members,
    removed: () => state.removed,
    clientUrls: config.advertiseClientUrls,
    alwaysPublish: recovered.joined,
    clusterInfo: () => encodeClusterInfo(clusterId, state.members),
    onRemoved: (reason) => {
      void server?.stop().finally(() => options.onRemoved?.(reason));
    },
    log: options.log,
    tls: options.peerTls ?? (await peerTlsFromConfig(config)),
  });
  const forwarder = new LeaseForwarder(raftOptions.requestTimeoutMs, await clientTlsMaterial(config));
  const forwardLeaseRenew = (leader: bigint, id: bigint): Promise<number> => {
    const url = state.members.find((m) => m.id === leader)?.clientUrls[0];
    // The leader has not published its client URLs yet: as etcd, the follower cannot reach a leader.
    if (!url) return Promise.reject(Errors.noLeader());
    return forwarder.renew(url, id);
  };
  const onStop = async () => {
    forwarder.close();
    await recovered.close?.();
  };
  const forwardPromote = (leader: bigint, id: bigint): Promise<void> => {
    const url = state.members.find((m) => m.id === leader)?.clientUrls[0];
    if (!url) return Promise.reject(Errors.noLeader());
    return forwarder.promote(url, id);
  };
  const forwardLeaseTimeToLive = (leader: bigint, id: bigint, keys: boolean) => {
    const url = state.members.find((m) => m.id === leader)?.clientUrls[0];
    if (!url) return Promise.reject(Errors.noLeader());
    return forwarder.timeToLive(url, id, keys);
  };
  server = new EtcdServer(config, {
    state, proposer, memberId, clusterId, metrics, onStop, forwardLeaseRenew, membership: proposer, forwardPromote, forwardLeaseTimeToLive,
  }, options);
  return server;
}

function bootstrapState(config: NestcdConfig, mvccOptions: MvccOptions) {
  const members = initialMembers(config);
  const memberId = members.find((m) => m.name === config.name)!.id;
  const clusterId = clusterIdOf(members.map((m) => m.id));
  const state = new MemberState(new MvccStore(mvccOptions), mvccOptions);
  state.members = members;
  const voters = members.filter((m) => !m.isLearner).map((m) => m.id);
  const snapshot: Snapshot = { data: state.snapshot(), metadata: { index: 1, term: 1, confState: { voters, learners: [] } } };
  const hardState: HardState = { term: 1, vote: 0n, commit: 1 };
  return { state, memberId, clusterId, snapshot, hardState };
}

function bootstrapInMemory(config: NestcdConfig, mvccOptions: MvccOptions): Recovered {
  const { state, memberId, clusterId, snapshot, hardState } = bootstrapState(config, mvccOptions);
  const storage = new MemoryStorage();
  storage.applySnapshot(snapshot);
  storage.setHardState(hardState);
  return { state, storage, memberId, clusterId };
}

async function openDataDir(config: NestcdConfig, mvccOptions: MvccOptions, options: OpenMemberOptions, metrics: ServerMetrics): Promise<Recovered> {
  const fs = options.fs ?? defaultFileSystem;
  const log = options.log;
  const dirs = await ensureDataDir(config.dataDir, config.walDir, fs, log);
  const snapshotter = new Snapshotter(dirs.snapDir, fs, log);
  const walOptions = { fs, log, segmentSize: options.walSegmentBytes, onSync: (seconds: number) => metrics.walFsync.observe(seconds) };
  const storage = new MemoryStorage();
  let wal: Wal;
  let state: MemberState;
  let memberId: bigint;
  let clusterId: bigint;
  let joined = false;

  if (await Wal.exists(dirs.walDir, fs)) {
    // Only a snapshot the WAL has a marker for is known to be complete and consistent with the log.
    const { markers } = await Wal.readSnapshotMarkers(dirs.walDir, { fs });
    const snapshot = await snapshotter.loadNewest((info) => markers.some((m) => m.index === info.index && m.term === info.term));
    const opened = await Wal.open(dirs.walDir, {
      ...walOptions,
      fromSnapshot: snapshot ? { index: snapshot.metadata.index, term: snapshot.metadata.term } : undefined,
    });
    wal = opened.wal;
    memberId = opened.metadata.memberId;
    clusterId = opened.metadata.clusterId;
    state = new MemberState(new MvccStore(mvccOptions), mvccOptions);
    if (snapshot) {
      state.restore(snapshot.data);
      storage.applySnapshot({ metadata: snapshot.metadata, data: SNAPSHOT_DATA_ON_DISK });
    }
    // A snapshot holds applied (so committed) state; the commit index after it may not have been fsynced (Wal).
    storage.setHardState({ ...opened.hardState, commit: Math.max(opened.hardState.commit, snapshot?.metadata.index ?? 0) });
    storage.append(opened.entries);
    if (state.members.length === 0 && !snapshot && config.initialClusterState === 'existing') {
      // A joining member stopped before the leader's snapshot reached it: ask the cluster for its members again.
      const again = await joinExistingCluster(config, log);
      if (again.memberId === memberId && again.clusterId === clusterId) {
        state.members = again.members;
        joined = true;
      }
    }
    log?.(
      `recovered member ${memberId.toString(16)} from ${dirs.dataDir}: snapshot at index ${snapshot?.metadata.index ?? 0}, ` +
        `${opened.entries.length} WAL entries, commit ${opened.hardState.commit}`,
    );
  } else if (config.initialClusterState === 'existing') {
    // A member added at runtime: no log of its own; the leader sends it a snapshot and the log after it.
    const joining = await joinExistingCluster(config, log);
    ({ memberId, clusterId } = joining);
    state = new MemberState(new MvccStore(mvccOptions), mvccOptions);
    state.members = joining.members;
    wal = await Wal.create(dirs.walDir, { memberId, clusterId }, walOptions);
    joined = true;
    log?.(`joining existing cluster ${clusterId.toString(16)} as member ${memberId.toString(16)}`);
  } else {
    const boot = bootstrapState(config, mvccOptions);
    ({ state, memberId, clusterId } = boot);
    wal = await Wal.create(dirs.walDir, { memberId, clusterId }, walOptions);
    await snapshotter.save(boot.snapshot);
    await wal.saveSnapshot({ index: 1, term: 1 });
    await wal.save(boot.hardState, []);
    storage.applySnapshot({ metadata: boot.snapshot.metadata, data: SNAPSHOT_DATA_ON_DISK });
    storage.setHardState(boot.hardState);
  }

  const afterSnapshotSaved = async (metadata: SnapshotMetadata): Promise<void> => {
    await wal.saveSnapshot({ index: metadata.index, term: metadata.term });
    await wal.purge(metadata.index, config.maxWals);
    await snapshotter.purge(config.maxSnapshots);
  };
  const persistence: RaftPersistence = {
    save: (hardState, entries, opts) => wal.save(hardState, entries, opts),
    // etcd's order: the snapshot file, then its WAL marker; only then are older WAL segments and snapshots released.
    saveSnapshot: async (snapshot) => {
      const stopTimer = metrics.backendCommit.startTimer();
      await snapshotter.save(snapshot);
      stopTimer();
      await afterSnapshotSaved(snapshot.metadata);
    },
    createSnapshot: async (metadata) => {
      const file = await snapshotter.create(metadata);
      return {
        write: (bytes) => file.write(bytes),
        abort: () => file.abort(),
        commit: async () => {
          const stopTimer = metrics.backendCommit.startTimer();
          await file.commit();
          stopTimer();
          await afterSnapshotSaved(metadata);
        },
      };
    },
    // The log storage keeps only snapshot metadata (SNAPSHOT_DATA_ON_DISK): a follower's snapshot is read from here.
    loadSnapshotData: async (metadata) => (await snapshotter.loadAt(metadata.term, metadata.index)).data,
  };
  return { state, storage, memberId, clusterId, persistence, close: () => wal.close(), joined };
}
