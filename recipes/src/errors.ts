export type CoordinationErrorReason =
  /** acquire/campaign gave up after timeoutMs. */
  | 'timeout'
  /** the caller's AbortSignal fired. */
  | 'aborted'
  /** the session (lease) is gone: nothing held under it is held any more. */
  | 'session-lost'
  /** the session was closed by the application (shutdown). */
  | 'closed'
  /** a guarded operation found that the handle no longer owns its key. */
  | 'not-owner'
  /** tryAcquire found the lock held by someone else. */
  | 'busy';

/** What every recipe rejects with; `reason` says why in a way code can switch on. */
export class CoordinationError extends Error {
  constructor(
    readonly reason: CoordinationErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CoordinationError';
  }
}

/** The reason an AbortSignal fired, as a CoordinationError. */
export function abortReason(signal: AbortSignal, fallback: CoordinationErrorReason = 'aborted'): CoordinationError {
  const r: unknown = signal.reason;
  if (r instanceof CoordinationError) return r;
  return new CoordinationError(fallback, r instanceof Error ? r.message : 'aborted', { cause: r });
}
