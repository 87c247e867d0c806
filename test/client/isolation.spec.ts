// Importing '@nestcd/client' (the remote client and the interface) must not load server code or ioredis: that is
// what lets nestcdctl and apps using a remote cluster stay light. Checked on the build (npm test builds first).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/processes';

const entry = join(REPO_ROOT, 'dist', 'libs', 'client', 'src', 'index.js');

function loadedBy(script: string): string[] {
  const out = execFileSync(process.execPath, ['-e', `${script}; process.stdout.write(JSON.stringify(Object.keys(require.cache)))`], { cwd: REPO_ROOT });
  return JSON.parse(out.toString()) as string[];
}

describe('@nestcd/client module boundaries (built)', () => {
  it('the main entry loads no server lib and no ioredis, and its backends are reachable', () => {
    expect(existsSync(entry)).toBe(true);
    const loaded = loadedBy(`const c = require(${JSON.stringify(entry)}); if (typeof c.RemoteClient !== 'function' || typeof c.createEmbeddedClient !== 'function') throw new Error('exports')`);
    const offending = loaded.filter((p) => /[/\\]libs[/\\](server|mvcc|raft|storage|api|transport|config)[/\\]/.test(p) || /[/\\]ioredis[/\\]/.test(p));
    expect(offending).toEqual([]);
  });

  it('the embedded backend loads from the build (the recipes require it by path)', () => {
    const loaded = loadedBy(`const e = require(${JSON.stringify(join(REPO_ROOT, 'dist', 'libs', 'client', 'src', 'embedded'))}); if (typeof e.createEmbeddedClient !== 'function') throw new Error('exports')`);
    expect(loaded.some((p) => /[/\\]libs[/\\]server[/\\]/.test(p))).toBe(true);
  });
});
