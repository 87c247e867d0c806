/** Errors of libs/storage. Every one carries a message a human can act on. */

/** A WAL record before the tail fails its CRC or cannot be decoded: the server must refuse to start. */
export class WalCorruptionError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `WAL corruption in ${file} at byte offset ${offset}: ${reason}. ` +
        `Refusing to continue: acknowledged data may be affected (restore this member from a snapshot or re-add it to the cluster)`,
    );
    this.name = 'WalCorruptionError';
  }
}

/**
 * The WAL hit a write or fdatasync error and is permanently failed: nothing written after the last successful
 * fdatasync may be durable, so nothing more is acknowledged (fsyncgate). Restart the process (Wal.open) to recover.
 */
export class WalFailedError extends Error {
  /** errno code of the underlying failure ('EIO', 'ENOSPC', ...), if any. */
  readonly code: string | undefined;
  constructor(
    readonly dir: string,
    override readonly cause: unknown,
  ) {
    const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String((cause as { code: unknown }).code) : undefined;
    const what = code === 'ENOSPC' ? 'the disk is full (ENOSPC)' : `${cause instanceof Error ? cause.message : String(cause)}`;
    super(`WAL in ${dir} has failed and accepts no more writes: ${what}. Records not yet acknowledged are not durable; restart to recover`);
    this.name = 'WalFailedError';
    this.code = code;
  }
}

export class WalClosedError extends Error {
  constructor(readonly dir: string) {
    super(`WAL in ${dir} is closed`);
    this.name = 'WalClosedError';
  }
}

export class WalExistsError extends Error {
  constructor(readonly dir: string) {
    super(`a WAL already exists in ${dir}`);
    this.name = 'WalExistsError';
  }
}

export class WalNotFoundError extends Error {
  constructor(readonly dir: string) {
    super(`no WAL found in ${dir}`);
    this.name = 'WalNotFoundError';
  }
}

/** Another live process (or another open Wal in this process) holds the directory's lock file. */
export class WalLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly holder: string,
  ) {
    super(`${dir} is in use by another process (${holder}); refusing to open it twice`);
    this.name = 'WalLockedError';
  }
}

/** The WAL does not hold what the caller's snapshot needs (e.g. entries after it were purged, or terms disagree). */
export class WalSnapshotMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WalSnapshotMismatchError';
  }
}
