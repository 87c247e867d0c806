import type { NestcdConfig } from '@nestcd/config';
import { MvccStore } from '@nestcd/mvcc';
import { defaultFileSystem, ensureDataDir, Snapshotter, Wal } from '@nestcd/storage';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { clusterIdOf } from './ids';
import { MemberState } from './member-state';
import { initialMembers } from './open-member';

export interface RestoreProgress {
  (step: string, done: number, total: number): void;
}

const DIGEST_BYTES = 32;

/**
 * Builds a new member's data dir from a `snapshot save` file: the keyspace (revisions, leases) is kept,
 * membership comes from the restore flags, as etcdctl's `snapshot restore` does. The new member then starts
 * with `nestcd --data-dir DIR` and the same --name / --initial-cluster.
 */
export async function restoreSnapshot(file: string, config: NestcdConfig, progress: RestoreProgress = () => undefined): Promise<{
  revision: number;
  keys: number;
  memberId: bigint;
  clusterId: bigint;
}> {
  const steps = 4;
  progress('reading snapshot', 0, steps);
  const blob = await readFile(file);
  if (blob.length <= DIGEST_BYTES) throw new Error(`${file} is too short to be a snapshot`);
  progress('verifying sha256', 1, steps);
  const body = blob.subarray(0, blob.length - DIGEST_BYTES);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(blob.subarray(blob.length - DIGEST_BYTES))) {
    throw new Error(`${file}: sha256 checksum mismatch: the snapshot is corrupt or truncated`);
  }
  progress('decoding keyspace', 2, steps);
  const mvccOptions = { minLeaseTtl: Math.ceil((3 * config.electionTimeout) / 2 / 1000) };
  const state = new MemberState(new MvccStore(mvccOptions), mvccOptions);
  state.restore(body);

  progress('writing data dir', 3, steps);
  const existing = await readdir(config.dataDir).catch(() => []);
  if (existing.length > 0) throw new Error(`data-dir "${config.dataDir}" exists and is not empty`);
  const members = initialMembers(config);
  const memberId = members.find((m) => m.name === config.name)!.id;
  const clusterId = clusterIdOf(members.map((m) => m.id));
  state.members = members;
  const dirs = await ensureDataDir(config.dataDir, config.walDir, defaultFileSystem);
  const voters = members.map((m) => m.id);
  const snapshot = { data: state.snapshot(), metadata: { index: 1, term: 1, confState: { voters, learners: [] } } };
  await new Snapshotter(dirs.snapDir).save(snapshot);
  const wal = await Wal.create(dirs.walDir, { memberId, clusterId });
  await wal.saveSnapshot({ index: 1, term: 1 });
  await wal.save({ term: 1, vote: 0n, commit: 1 }, []);
  await wal.close();
  progress('done', steps, steps);
  const keys = state.store.range({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]), countOnly: true }).count;
  return { revision: state.store.currentRevision, keys, memberId, clusterId };
}

/**
 * `snapshot status` of a nestcd `snapshot save` file: undefined when `blob` is not one (no sha256 trailer over it, or
 * not a member snapshot). The hash is the keyspace's HashKV; keys counts the live keys.
 */
export function nestcdSnapshotStatus(blob: Buffer): { hash: number; revision: number; totalKey: number; totalSize: number } | undefined {
  if (blob.length <= DIGEST_BYTES) return undefined;
  const body = blob.subarray(0, blob.length - DIGEST_BYTES);
  if (!createHash('sha256').update(body).digest().equals(blob.subarray(blob.length - DIGEST_BYTES))) return undefined;
  const state = new MemberState(new MvccStore());
  try {
    state.restore(body);
  } catch {
    return undefined;
  }
  const store = state.store;
  const totalKey = store.range({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]), countOnly: true }).count;
  return { hash: store.hashKV(0).hash, revision: store.currentRevision, totalKey, totalSize: body.length };
}
