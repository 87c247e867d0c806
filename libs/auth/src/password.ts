import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password hashing with scrypt (memory-hard, in node's crypto; runs on the libuv pool, never on the event loop).
 * The cost is close to etcd's bcrypt cost 10 (tens of ms per guess), which is what slows brute force down.
 * Stored as `scrypt$N$r$p$salt$hash` (base64) so the parameters can be raised without breaking old records.
 */
export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_COST: ScryptCost = { N: 1 << 14, r: 8, p: 1 };
const KEY_BYTES = 32;

/**
 * One hash at a time: scrypt runs on libuv's small thread pool, which the WAL's fsyncs share; a burst of
 * logins must queue here rather than stall every write.
 */
let lane: Promise<unknown> = Promise.resolve();

function derive(password: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  const run = (): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      scrypt(password, salt, KEY_BYTES, { ...cost, maxmem: 256 * cost.N * cost.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
    });
  const result = lane.then(run, run);
  lane = result.catch(() => undefined);
  return result;
}

/**
 * Recently verified (record, password) pairs, as an HMAC under a key that lives only in this process: a client
 * that logs in again with the right password skips the hash; every wrong guess still pays it in full.
 */
const verifiedKey = randomBytes(32);
const verified = new Map<string, number>();
const VERIFIED_MAX = 1024;
const VERIFIED_TTL_MS = 5 * 60_000;
const verifiedTag = (password: string, encoded: string) => createHmac('sha256', verifiedKey).update(encoded).update('\0').update(password).digest('base64');

export async function hashPassword(password: string, cost: ScryptCost = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost);
  return ['scrypt', cost.N, cost.r, cost.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** A hash no password matches, verified for unknown users so the time taken does not tell whether one exists. */
let decoy: Promise<string> | undefined;

/** True when `password` matches `encoded`; `undefined` (no such user, or a no-password user) still costs a hash. */
export async function verifyPassword(password: string, encoded: string | undefined): Promise<boolean> {
  if (encoded !== undefined) {
    const tag = verifiedTag(password, encoded);
    const until = verified.get(tag);
    if (until !== undefined && until > Date.now()) return true;
    const ok = await verifyByHash(password, encoded);
    if (ok) {
      if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value!);
      verified.set(tag, Date.now() + VERIFIED_TTL_MS);
    }
    return ok;
  }
  return verifyByHash(password, undefined);
}

async function verifyByHash(password: string, encoded: string | undefined): Promise<boolean> {
  const target = encoded ?? (await (decoy ??= hashPassword(randomBytes(12).toString('hex'))));
  const parts = target.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const cost = { N: Number(parts[1]), r: Number(parts[2]), p: Number(parts[3]) };
  const expected = Buffer.from(parts[5], 'base64');
  const key = await derive(password, Buffer.from(parts[4], 'base64'), cost);
  return encoded !== undefined && key.length === expected.length && timingSafeEqual(key, expected);
}
