// Shapes of the cluster, maintenance and auth calls RemoteClient offers beyond KvClient (etcd's, camelCased).
import type { Member, ResponseHeader } from '../types';

export interface MemberAddResponse {
  header: ResponseHeader;
  member: Member;
  members: Member[];
}

export interface MembersResponse {
  header: ResponseHeader;
  members: Member[];
}

export type AlarmType = 'NONE' | 'NOSPACE' | 'CORRUPT';

export interface AlarmMember {
  memberId: bigint;
  alarm: AlarmType;
}

export interface AlarmResponse {
  header: ResponseHeader;
  alarms: AlarmMember[];
}

export interface HashResponse {
  header: ResponseHeader;
  hash: number;
}

export interface HashKVResponse {
  header: ResponseHeader;
  hash: number;
  compactRevision: number;
}

export interface HeaderResponse {
  header: ResponseHeader;
}

export interface AuthenticateResponse {
  header: ResponseHeader;
  token: string;
}

export interface UserGetResponse {
  header: ResponseHeader;
  roles: string[];
}

export interface NamesResponse {
  header: ResponseHeader;
  /** users or roles. */
  names: string[];
}

export type PermissionType = 'READ' | 'WRITE' | 'READWRITE';

export interface Permission {
  permType: PermissionType;
  key: Buffer;
  /** empty: the single key; [0]: every key >= key; otherwise [key, rangeEnd). */
  rangeEnd: Buffer;
}

export interface RoleGetResponse {
  header: ResponseHeader;
  perm: Permission[];
}

export interface LeaseLeasesResponse {
  header: ResponseHeader;
  leases: bigint[];
}

export interface SnapshotChunk {
  /** bytes still to come after this chunk. */
  remainingBytes: number;
  blob: Buffer;
}
