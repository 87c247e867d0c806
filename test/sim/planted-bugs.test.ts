import { PlantedBugs } from '@nestcd/raft';
import { MIXES, SimOptions, optionsForSeed, runSeed } from './sim';

/**
 * The checker has teeth: with a known bug planted in the raft core, the simulator must find a failing seed
 * within a fixed budget. (Seeds are deterministic, so these are stable, not flaky.)
 */
const BUDGET = 1500;

function hunt(bug: keyof PlantedBugs, overrides: Partial<SimOptions> = {}): { seed: number; error: string } | undefined {
  for (let seed = 1; seed <= BUDGET; seed++) {
    const r = runSeed(seed, { ...overrides, plantedBugs: { [bug]: true } });
    if (!r.ok) return { seed, error: r.error! };
  }
  return undefined;
}

describe('planted bugs are caught by the simulator', () => {
  it('commit of an old-term entry by counting replicas (figure 8)', () => {
    const found = hunt('commitOldTermByCounting', { nodes: 3, mix: MIXES.find((m) => m.name === 'leader-churn')! });
    expect(found).toBeDefined();
    expect(found!.error).toMatch(/leader completeness|committed entry changed|state machine safety/);
  });

  it('granting a vote without the log freshness check', () => {
    const found = hunt('voteWithoutLogCheck');
    expect(found).toBeDefined();
    expect(found!.error).toMatch(/leader completeness|committed entry changed|state machine safety/);
  });

  it('serving ReadIndex without confirming leadership', () => {
    const found = hunt('readWithoutQuorumCheck');
    expect(found).toBeDefined();
    expect(found!.error).toMatch(/linearizability/);
  });

  it('the same seeds pass without the bug (the failure is the bug, not the harness)', () => {
    for (let seed = 1; seed <= 50; seed++) expect(runSeed(seed).ok).toBe(true);
    expect(optionsForSeed(1).nodes).toBe(5);
  });
});
