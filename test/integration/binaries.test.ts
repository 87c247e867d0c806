import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNestcd } from '../support/processes';
import { startInProcess } from './in-process';

// The launchers in bin/ run the built apps (npm test builds first).
const bin = (name: string) => join(__dirname, '..', '..', 'bin', name);

describe('bin/nestcd', () => {
  it('prints its version', () => {
    const r = spawnSync(bin('nestcd'), ['--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^nestcd Version: \d+\.\d+\.\d+\netcd API Version: 3\.4\.0\n/);
  });

  it('refuses an unknown flag with a clear message and a non-zero exit', () => {
    const r = spawnSync(bin('nestcd'), ['--no-such-flag'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('nestcd: flag provided but not defined: --no-such-flag');
  });

  it('refuses a bad value naming the flag', () => {
    const r = spawnSync(bin('nestcd'), ['--listen-client-urls', 'localhost'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--listen-client-urls: must be a URL');
  });

  it("runs node with its first line's garbage collection flags: main thread only, no full collection of a small heap", async () => {
    const server = await startNestcd(); // starts bin/nestcd itself, as systemd, docker and `npm start` do
    try {
      const argv = readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').split('\0');
      const launcherAt = argv.findIndex((a) => a.endsWith('/bin/nestcd'));
      expect(launcherAt).toBeGreaterThan(0);
      expect(argv.slice(0, launcherAt)).toEqual(expect.arrayContaining(['--single-threaded-gc', '--initial-old-space-size=256']));
    } finally {
      await server.stop(0);
    }
  });

  it('lists etcd flags in --help', () => {
    const r = spawnSync(bin('nestcd'), ['--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const flag of ['--data-dir', '--listen-client-urls', '--initial-cluster', '--max-request-bytes']) expect(r.stdout).toContain(flag);
  });
});

describe('bin/nestcdctl', () => {
  it('puts, gets and deletes against a running member', async () => {
    const member = await startInProcess();
    try {
      // The member runs in this process, so the CLI must run asynchronously (spawnSync would block the server).
      const ctl = (...args: string[]) =>
        new Promise<string>((resolve, reject) =>
          execFile(bin('nestcdctl'), ['--endpoints', member.endpoint, ...args], { timeout: 15000 }, (err, stdout, stderr) =>
            err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
          ),
        );
      expect(await ctl('put', 'k1', 'v1')).toBe('OK\n');
      expect(await ctl('put', 'k2', 'v2')).toBe('OK\n');
      expect(await ctl('get', 'k1')).toBe('k1\nv1\n');
      expect(await ctl('get', 'k', '--prefix')).toBe('k1\nv1\nk2\nv2\n');
      expect(await ctl('del', 'k', '--prefix')).toBe('2\n');
      expect(await ctl('get', 'k1')).toBe('');
    } finally {
      await member.close();
    }
  });
});
