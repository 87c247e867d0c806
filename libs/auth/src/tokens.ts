import { randomInt } from 'node:crypto';

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** etcd's simple token: 16 random letters, a dot and a sequence number (`AbCdEfGhIjKlMnOp.12`). */
export function newSimpleToken(seq: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) s += LETTERS[randomInt(LETTERS.length)];
  return `${s}.${seq}`;
}

/**
 * The member's simple tokens (etcd's simpleTokenTTLKeeper): in memory only, so a restart or another cluster
 * knows none of them. Each use pushes the expiry out by the TTL again, as etcd does.
 */
export class SimpleTokens {
  private readonly tokens = new Map<string, { user: string; expiresAt: number }>();
  /** When this member started: tokens are in memory, so one issued before is unknown here (as after an etcd restart). */
  private readonly since: number;

  constructor(public ttlMs = 300_000, private readonly clock: () => number = Date.now) {
    this.since = clock();
  }

  /**
   * Registers a token issued at `issuedAt` (default now). Replaying the log after a restart must not bring
   * old tokens back: one issued before this member started, or already past its TTL, is not kept.
   */
  add(token: string, user: string, issuedAt = this.clock()): void {
    if (issuedAt < this.since) return;
    const expiresAt = Math.min(issuedAt, this.clock()) + this.ttlMs;
    if (expiresAt <= this.clock()) return;
    this.tokens.set(token, { user, expiresAt });
  }

  /** The token's user, or undefined when unknown or expired. */
  user(token: string): string | undefined {
    const entry = this.tokens.get(token);
    if (!entry) return undefined;
    const now = this.clock();
    if (entry.expiresAt <= now) {
      this.tokens.delete(token);
      return undefined;
    }
    entry.expiresAt = now + this.ttlMs;
    return entry.user;
  }

  invalidateUser(user: string): void {
    for (const [token, entry] of this.tokens) if (entry.user === user) this.tokens.delete(token);
  }

  clear(): void {
    this.tokens.clear();
  }

  get size(): number {
    return this.tokens.size;
  }
}
