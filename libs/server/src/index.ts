export { CLUSTER_VERSION, EtcdServer, MAX_LEASE_TTL, SERVER_VERSION } from './etcd-server';
export type { EtcdServerOptions, Header, Member, MemberParts, Proposer, Status } from './etcd-server';
export { clusterIdOf, IdGenerator, memberIdOf } from './ids';
export { initialMembers, openMember } from './open-member';
export type { OpenMemberOptions } from './open-member';
export { EntryKind, RaftMember } from './raft-member';
export type { RaftMemberOptions, RaftPersistence, RaftTransport } from './raft-member';
