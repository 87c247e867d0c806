/* Helpers shared by the storage specs (not part of the public surface). */
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Entry, EntryType, HardState } from '@nestcd/raft';

export function tmpDir(prefix = 'nestcd-storage-'): string {
  return nodeFs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function rmDir(dir: string): void {
  nodeFs.rmSync(dir, { recursive: true, force: true });
}

export function entry(index: number, term = 1, data: Uint8Array | string = `v${index}`): Entry {
  return { index, term, type: EntryType.Normal, data: typeof data === 'string' ? new TextEncoder().encode(data) : data };
}

export function entries(from: number, to: number, term = 1, size?: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, size === undefined ? `v${i}` : new Uint8Array(size).fill(i & 0xff)));
  return out;
}

export function hs(term: number, commit: number, vote = 1n): HardState {
  return { term, vote, commit };
}

/** Comparable form of entries (Uint8Array -> hex). */
export function plain(ents: Entry[]): Array<[number, number, number, string]> {
  return ents.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString('hex')]);
}

export function walFiles(dir: string): string[] {
  return nodeFs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.wal'))
    .sort()
    .map((n) => path.join(dir, n));
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
