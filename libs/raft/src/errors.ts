/** Errors thrown by the raft library. All extend RaftError so callers can catch the family. */
export class RaftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A proposal (or read / transfer request) was not accepted; the caller should retry later or elsewhere. */
export class ProposalDroppedError extends RaftError {
  constructor(reason = 'raft proposal dropped') {
    super(reason);
  }
}

/** No leader is known, so a follower cannot forward the request. Fail fast and retry after an election. */
export class NoLeaderError extends ProposalDroppedError {
  constructor() {
    super('raft: no leader');
  }
}

/** Storage: the requested index is below the first available index (compacted into a snapshot). */
export class CompactedError extends RaftError {
  constructor() {
    super('requested index is unavailable due to compaction');
  }
}

/** Storage: the requested index is beyond the last index. */
export class UnavailableError extends RaftError {
  constructor() {
    super('requested entry at index is unavailable');
  }
}

/** Storage: a snapshot older than the current one was applied or created. */
export class SnapOutOfDateError extends RaftError {
  constructor() {
    super('requested index is older than the existing snapshot');
  }
}

/** Storage: the snapshot is being produced; raft retries later. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  constructor() {
    super('snapshot is temporarily unavailable');
  }
}

/** A local-only message type was passed to RawNode.step. */
export class StepLocalMsgError extends RaftError {
  constructor() {
    super('raft: cannot step raft local message');
  }
}

/** A response arrived from a node that is not in the configuration. */
export class StepPeerNotFoundError extends RaftError {
  constructor() {
    super('raft: cannot step as peer not found');
  }
}

/** An internal invariant was violated: a bug in raft or a misbehaving storage/driver. */
export class RaftInvariantError extends RaftError {}

export function invariant(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new RaftInvariantError(msg);
}
