/**
 * A small seeded PRNG (mulberry32) returning numbers in [0, 1): the deterministic `rand` for RaftConfig.
 * Servers may seed it from their node id so that members do not time out in lockstep.
 */
export function seededRandom(seed: number | bigint): () => number {
  let a = Number(BigInt.asUintN(32, BigInt(seed))) >>> 0;
  if (a === 0) a = 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
