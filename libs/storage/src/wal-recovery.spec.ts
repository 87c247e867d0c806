import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { Entry, HardState, emptyHardState } from '@nestcd/raft';
import { FaultyFileSystem, SimulatedCrashError } from './fs';
import { WalFailedError } from './errors';
import { Wal } from './wal';
import { HEADER_SIZE, RecordType, encodeFrames, frameSize } from './wal-record';
import { entry, hs, plain, rmDir, tmpDir, walFiles } from './test-helpers';

const META = { memberId: 7n, clusterId: 9n };

interface Step {
  /** Entries start at this index (<= last + 1: a lower value is a raft truncation). */
  back: number;
  sizes: number[];
  hardState: boolean;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  back: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
  sizes: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 0, maxLength: 4 }),
  hardState: fc.boolean(),
});

/** Applies raft truncation semantics to a model log. */
function applyModel(log: Entry[], ents: Entry[]): Entry[] {
  let out = log;
  for (const e of ents) {
    const keep = out.findIndex((x) => x.index >= e.index);
    out = keep < 0 ? [...out, e] : [...out.slice(0, keep), e];
  }
  return out;
}

describe('Wal recovery after a torn write (property)', () => {
  let root: string;
  beforeAll(() => {
    root = tmpDir();
  });
  afterAll(() => rmDir(root));
  let run = 0;

  it('random record sequences, torn anywhere in the last record (zeros or garbage after the tear): recovers exactly the acknowledged prefix', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { minLength: 0, maxLength: 25 }),
        fc.integer({ min: 0, max: 400 }), // last entry's data size
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), // where in the last record to tear
        fc.constantFrom(1024, 4096, 1 << 20), // segment size
        fc.boolean(), // garbage instead of zeros after the tear
        fc.uint8Array({ minLength: 0, maxLength: 64 }), // extra garbage past the record
        async (steps, lastSize, cutFrac, segmentSize, garbage, extra) => {
          const dir = path.join(root, `p${run++}`);
          const ffs = new FaultyFileSystem();
          const wal = await Wal.create(dir, META, { fs: ffs, segmentSize });
          let model: Entry[] = [];
          let hard: HardState = emptyHardState();
          let term = 1;
          let commit = 0;
          for (const st of steps) {
            const last = model.length ? model[model.length - 1].index : 0;
            let first = last + 1;
            if (st.back > 0 && model.length > 0) {
              first = Math.max(commit + 1, last + 1 - st.back);
              term++;
            }
            const ents = st.sizes.map((sz, i) => entry(first + i, term, new Uint8Array(sz).fill((first + i) & 0xff)));
            const after = applyModel(model, ents);
            const h = st.hardState ? hs(term, (commit = Math.max(commit, Math.min(after.length ? after[after.length - 1].index : 0, commit + 1)))) : undefined;
            await wal.save(h, ents);
            model = after;
            if (h) hard = h;
          }
          // The last save: one entry record, torn at a random byte of its frame.
          const lastIdx = (model.length ? model[model.length - 1].index : 0) + 1;
          const frame = HEADER_SIZE + 18 + lastSize;
          const cut = Math.floor(cutFrac * frame);
          const filesBefore = walFiles(dir);
          const lastFile = filesBefore[filesBefore.length - 1];
          const tailBefore = lastFileTail(lastFile);
          const opensBefore = ffs.stats.opens;
          ffs.tearAfterBytes = cut;
          const err = await wal.save(undefined, [entry(lastIdx, term, new Uint8Array(lastSize).fill(0xab))]).catch((e: unknown) => e);
          const rolled = walFiles(dir).length !== filesBefore.length;
          // Where the tear hit the entry's frame: a rollover first writes the new segment's header (CRC, metadata,
          // hard state records) and spends the byte budget on it.
          const segHeader = frameSize({ type: RecordType.Crc, crc: 0 }) + frameSize({ type: RecordType.Metadata, metadata: { ...META, data: new Uint8Array(0) } }) + frameSize({ type: RecordType.HardState, hardState: hard });
          const entryCut = ffs.stats.opens === opensBefore ? cut : rolled ? cut - segHeader : -1;
          expect(err).toBeInstanceOf(WalFailedError);
          expect((err as WalFailedError).cause).toBeInstanceOf(SimulatedCrashError);
          await wal.close();

          // Optionally, garbage where the tear left zeros (a torn sector can hold anything).
          const files = walFiles(dir);
          if (garbage && files.length === filesBefore.length && tailBefore !== undefined) {
            const g = Buffer.from(Array.from({ length: frame - cut }, (_, i) => (i * 131 + 17) & 0xff));
            const fd = nodeFs.openSync(lastFile, 'r+');
            nodeFs.writeSync(fd, Buffer.concat([g, Buffer.from(extra)]), 0, g.length + extra.length, tailBefore + cut);
            nodeFs.closeSync(fd);
          }

          // If every byte the tear withheld was zero anyway (e.g. the high bytes of a small term), the record on disk
          // is complete and valid: recovering it is right (it is identical to what was written).
          const lastEntry = entry(lastIdx, term, new Uint8Array(lastSize).fill(0xab));
          const body = encodeFrames([{ type: RecordType.Entry, entry: lastEntry }], 0).buf.subarray(HEADER_SIZE);
          const complete = !garbage && entryCut >= HEADER_SIZE && body.subarray(entryCut - HEADER_SIZE).every((b) => b === 0);
          const logs: string[] = [];
          const r = await Wal.open(dir, { segmentSize, log: (m) => logs.push(m) });
          if (complete) model = [...model, lastEntry];
          expect(plain(r.entries)).toEqual(plain(model));
          expect(r.hardState).toEqual(hard);
          // and the WAL goes on from there
          const afterIdx = model.length ? model[model.length - 1].index + 1 : 1;
          await r.wal.save(undefined, [entry(afterIdx, term, 'after')]);
          await r.wal.close();
          const r2 = await Wal.open(dir, { segmentSize });
          expect(plain(r2.entries)).toEqual(plain([...model, entry(afterIdx, term, 'after')]));
          await r2.wal.close();
          rmDir(dir);
        },
      ),
      { numRuns: Number(process.env.WAL_PROPERTY_RUNS ?? 120) },
    );
  });

  it('every byte offset of the last record, torn with zeros and with garbage', async () => {
    const dir = path.join(root, 'every');
    const wal = await Wal.create(dir, META, { segmentSize: 8192 });
    const acked: Entry[] = [];
    for (let i = 1; i <= 20; i++) {
      const e = entry(i, 1, `payload-${i}-${'q'.repeat(i * 3)}`);
      await wal.save(hs(1, i - 1), [e]);
      acked.push(e);
    }
    const last = entry(21, 1, 'the-last-record-which-gets-torn');
    const file = walFiles(dir)[0];
    const tail = lastFileTail(file)!;
    await wal.save(undefined, [last]);
    await wal.close();
    const pristine = nodeFs.readFileSync(file);
    const frame = HEADER_SIZE + 18 + last.data.length;
    for (const mode of ['zeros', 'garbage'] as const) {
      for (let cut = 0; cut < frame; cut++) {
        const buf = Buffer.from(pristine);
        for (let i = tail + cut; i < tail + frame; i++) buf[i] = mode === 'zeros' ? 0 : (i * 37 + cut) & 0xff;
        nodeFs.writeFileSync(file, buf);
        const logs: string[] = [];
        const r = await Wal.open(dir, { segmentSize: 8192, log: (m) => logs.push(m), lock: false });
        expect(plain(r.entries)).toEqual(plain(acked));
        expect(r.hardState).toEqual(hs(1, 19));
        if (cut > 0 || mode === 'garbage') expect(logs.join('\n')).toContain(`torn tail in ${file} at byte offset ${tail}`);
        await r.wal.close();
      }
    }
    nodeFs.writeFileSync(file, pristine);
    const r = await Wal.open(dir, { lock: false });
    expect(r.entries).toHaveLength(21);
    await r.wal.close();
  });
});

/** Byte offset where the next record of a segment would go (the first zero header), if it can be found. */
function lastFileTail(file: string): number | undefined {
  const buf = nodeFs.readFileSync(file);
  let off = 0;
  while (off + HEADER_SIZE <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len === 0) return off;
    off += HEADER_SIZE + len;
  }
  return undefined;
}
