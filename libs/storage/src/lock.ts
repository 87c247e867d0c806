import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { WalLockedError } from './errors';
import { readFileSync } from 'node:fs';
import { FileSystem, errnoCode, readWholeFile, writeFully } from './fs';

/**
 * Exclusive use of a directory through a lock file created with O_CREAT|O_EXCL ('wx'), holding
 * "<pid> <hostname> <token>". Node has no flock(2), so liveness is judged by pid:
 *
 * - held by a live pid on this host (process.kill(pid, 0) succeeds or fails with EPERM, and /proc does not show a
 *   zombie): locked.
 * - held by this very process: locked if a DirLock of this process currently holds it; otherwise it is stale
 *   (left by an instance abandoned after a simulated crash in tests, or a failed close).
 * - held by a dead pid on this host: stale; it is removed and creation retried once.
 * - held by another host (shared filesystem): locked; remove the file by hand if that host is gone.
 *
 * Known limits: pid reuse can make a stale lock look live (then remove the file by hand); two processes reclaiming
 * the same stale lock at the same instant can race (one may remove the other's fresh lock).
 */
export const LOCK_FILE = 'LOCK';

const heldInProcess = new Map<string, string>(); // absolute lock path -> token

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
  // A process killed with -9 stays a zombie until its parent reaps it; it holds nothing any more.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (not Linux): trust kill(0)
  }
}

export class DirLock {
  private released = false;

  private constructor(
    private readonly fs: FileSystem,
    readonly file: string,
    private readonly token: string,
  ) {}

  static async acquire(fs: FileSystem, dir: string): Promise<DirLock> {
    const file = path.resolve(dir, LOCK_FILE);
    const token = randomBytes(8).toString('hex');
    const content = Buffer.from(`${process.pid} ${os.hostname()} ${token}\n`);
    for (let attempt = 0; attempt < 2; attempt++) {
      if (heldInProcess.has(file)) throw new WalLockedError(dir, `this process (pid ${process.pid})`);
      try {
        const fh = await fs.open(file, 'wx', 0o600);
        try {
          await writeFully(fh, content, 0);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fs.fsyncDir(dir);
        heldInProcess.set(file, token);
        return new DirLock(fs, file, token);
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
      let holder = 'unknown holder';
      let stale = false;
      try {
        const text = (await readWholeFile(fs, file)).toString('utf8').trim();
        const [pidStr, host] = text.split(/\s+/);
        const pid = Number(pidStr);
        holder = `pid ${pidStr} on ${host}`;
        if (!Number.isInteger(pid) || pid <= 0) stale = text === ''; // empty: the creator died before writing
        else if (host !== os.hostname()) stale = false;
        else if (pid === process.pid) stale = !heldInProcess.has(file);
        else stale = !pidAlive(pid);
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue; // released meanwhile: retry
        throw e;
      }
      if (!stale) throw new WalLockedError(dir, holder);
      try {
        await fs.unlink(file);
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') throw e;
      }
    }
    throw new WalLockedError(dir, 'lock file keeps reappearing');
  }

  /** Removes the lock file (if it is still ours). Never throws: a lock file left behind is reclaimed as stale. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (heldInProcess.get(this.file) === this.token) heldInProcess.delete(this.file);
    try {
      const text = (await readWholeFile(this.fs, this.file)).toString('utf8');
      if (text.includes(this.token)) await this.fs.unlink(this.file);
    } catch {
      // ignore (e.g. the simulated process is dead)
    }
  }
}
