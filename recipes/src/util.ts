/** Resolves or rejects like `p`, or rejects after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    // a pause in a retry or campaign loop does not keep the process alive by itself
    const t = setTimeout(done, ms);
    t.unref();
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** One AbortSignal that fires when any of `signals` fires (undefined entries ignored). */
export function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
}

/** gRPC codes after which an idempotent request may simply be sent again. */
const TRANSIENT = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

export const isTransient = (err: unknown): boolean => TRANSIENT.has((err as { code?: unknown }).code as number);

/**
 * Runs an idempotent request again after a transient failure (a slow or failing-over store), with backoff, up to
 * `attempts` times or until `signal` fires.
 */
export async function retryTransient<T>(fn: () => Promise<T>, signal?: AbortSignal, attempts = 8): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || attempt >= attempts || signal?.aborted) throw err;
      await sleep(Math.min(1000, 50 * 2 ** attempt), signal);
    }
  }
}
