/**
 * @nestcd/raft: a pure raft consensus state machine (etcd's raft library design: RawNode + Ready).
 * See rawnode.ts for the driving contract and raft.ts for the protocol and membership notes.
 */
export * from './types';
export * from './errors';
export type { Storage } from './storage';
export { MemoryStorage, limitSize } from './storage';
export type { RaftConfig } from './raft';
export { RawNode } from './rawnode';
export type { Ready, RaftStatus } from './rawnode';
export { ProgressState } from './progress';
export { seededRandom } from './rand';
