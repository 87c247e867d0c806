/**
 * Simulator command line (run through test/sim/run.js, which compiles TypeScript on the fly):
 *   npm run soak:sim                       5000 seeds
 *   npm run soak:sim -- --seeds 20000      N seeds (from --first, default 1)
 *   npm run soak:sim -- --seed 1234        replay one seed and print its full trace
 *   npm run soak:sim -- --seed 7 --bug commitOldTermByCounting   replay with a planted bug
 *   npm run soak:sim -- --bench            raft throughput benchmark (3 nodes, in memory)
 */
import { PlantedBugs } from '@nestcd/raft';
import { formatFailure, optionsForSeed, runSeed } from './sim';
import { runBench } from './bench';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function main(): number {
  if (process.argv.includes('--bench')) {
    runBench(Number(arg('entries') ?? 1_000_000), Number(arg('batch') ?? 1000));
    return 0;
  }
  const bugs: PlantedBugs | undefined = arg('bug')
    ? Object.fromEntries(arg('bug')!.split(',').map((b) => [b, true]))
    : undefined;
  const one = arg('seed');
  if (one !== undefined) {
    const seed = Number(one);
    const overrides = { plantedBugs: bugs, traceLimit: Infinity };
    const r = runSeed(seed, overrides);
    if (r.ok) {
      console.log(`seed ${seed} ok`, r.stats);
      return 0;
    }
    console.log(formatFailure(r, optionsForSeed(seed, overrides)));
    return 1;
  }
  const n = Number(arg('seeds') ?? 5000);
  const first = Number(arg('first') ?? 1);
  const t0 = Date.now();
  let failed = 0;
  for (let seed = first; seed < first + n; seed++) {
    const r = runSeed(seed, { plantedBugs: bugs });
    if (!r.ok) {
      failed++;
      console.log(formatFailure(r, optionsForSeed(seed, { plantedBugs: bugs })).split('\n').slice(0, 60).join('\n'));
      console.log(`(full trace: npm run soak:sim -- --seed ${seed})`);
    }
    if ((seed - first + 1) % 1000 === 0) console.log(`${seed - first + 1}/${n} seeds, ${failed} failed, ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  }
  console.log(`done: ${n} seeds, ${failed} failed, ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  return failed ? 1 : 0;
}

process.exitCode = main();
