import { formatFailure, optionsForSeed, runSeed } from './sim';

/**
 * Bounded seed sweep for `npm test`: every seed picks a cluster size (3 or 5) and a fault mix.
 * SIM_SEEDS / SIM_FIRST_SEED override the range (the long soak uses `npm run soak:sim`).
 */
const SEEDS = Number(process.env.SIM_SEEDS ?? 3000);
const FIRST = Number(process.env.SIM_FIRST_SEED ?? 1);
const CHUNK = 250;

describe('raft simulator', () => {
  for (let start = FIRST; start < FIRST + SEEDS; start += CHUNK) {
    const end = Math.min(start + CHUNK, FIRST + SEEDS);
    it(`seeds ${start}..${end - 1} keep every invariant and recover after faults heal`, () => {
      for (let seed = start; seed < end; seed++) {
        const r = runSeed(seed);
        if (!r.ok) throw new Error(formatFailure(r, optionsForSeed(seed)));
      }
    }, 600_000);
  }
});
