export { CLUSTER_VERSION, EtcdServer, SERVER_VERSION, SingleNodeProposer } from './etcd-server';
export type { EtcdServerOptions, Header, Member, Proposer, Status } from './etcd-server';
export { clusterIdOf, IdGenerator, memberIdOf } from './ids';
