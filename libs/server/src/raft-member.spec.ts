import { Entry, EntryType, HardState, MemoryStorage, Message, MessageType, Snapshot, seededRandom } from '@nestcd/raft';
import { RaftMember, RaftPersistence, RestoreSteps, SnapshotSteps, StateMachine } from './raft-member';

// A lone member driven through RaftMember with a persistence whose writes the test holds and releases, to check
// the order in which a burst of proposals is written, applied and answered.

interface HeldWrite {
  entries: number;
  release: () => void;
}

class HeldPersistence implements RaftPersistence {
  readonly writes: HeldWrite[] = [];
  /** per save with entries: its entry count, and whether it asked for the fdatasync on the caller's thread */
  readonly saves: Array<{ entries: number; syncHere: boolean }> = [];
  holding = false;

  save(_hardState: HardState | undefined, entries: Entry[], opts?: { syncHere?: boolean }): Promise<void> {
    if (entries.length > 0) this.saves.push({ entries: entries.length, syncHere: opts?.syncHere === true });
    if (!this.holding || entries.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.writes.push({ entries: entries.length, release: resolve }));
  }

  saveSnapshot(): Promise<void> {
    return Promise.resolve();
  }
}

/** Applies each payload by recording it; answers with the entry's index. */
class RecordingStateMachine implements StateMachine {
  readonly applied: string[] = [];
  apply(_kind: number, payload: Buffer, index: number): unknown {
    this.applied.push(payload.toString());
    return index;
  }
  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }
  restore(): void {}
}

const settle = () => new Promise((r) => setImmediate(r));

async function waitFor(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

describe('RaftMember (a lone member)', () => {
  let member: RaftMember;
  let persistence: HeldPersistence;
  let machine: RecordingStateMachine;

  beforeEach(async () => {
    const storage = new MemoryStorage();
    storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    persistence = new HeldPersistence();
    machine = new RecordingStateMachine();
    member = new RaftMember({
      id: 1n, storage, stateMachine: machine, persistence, tickMs: 10, electionTicks: 10, snapshotCount: 1_000_000,
      requestTimeoutMs: 5000, rand: seededRandom(1),
    });
    await member.start();
    await waitFor('leadership', () => member.isLeader);
    // the new leader's empty entry is applied before the test starts holding writes
    await member.propose(0, Buffer.from('warm-up'));
  });

  afterEach(async () => {
    for (const w of persistence.writes) w.release();
    await member.stop();
  });

  it('writes a burst in two halves and answers the first half while the second half is still being written', async () => {
    persistence.holding = true;
    const answered: number[] = [];
    const proposals = Array.from({ length: 64 }, (_, i) => member.propose(0, Buffer.from(`p${i}`)).then(() => answered.push(i)));

    await waitFor('the first write', () => persistence.writes.length === 1);
    expect(persistence.writes[0].entries).toBe(32);
    await settle();
    expect(answered).toEqual([]); // nothing is answered before its entry is durable

    persistence.writes[0].release();
    await waitFor('the second write', () => persistence.writes.length === 2);
    expect(persistence.writes[1].entries).toBe(32);
    await waitFor('the first half answered', () => answered.length === 32);
    await settle();
    // the second half stays unanswered while its write is held
    expect(answered.sort((a, b) => a - b)).toEqual(Array.from({ length: 32 }, (_, i) => i));

    persistence.writes[1].release();
    await Promise.all(proposals);
    expect(answered).toHaveLength(64);
    expect(machine.applied.slice(-64)).toEqual(Array.from({ length: 64 }, (_, i) => `p${i}`));
  });

  it('asks for the fdatasync on its own thread once 8 writes in a row were small, and no more after a big one', async () => {
    const sequentially = async (n: number) => {
      for (let i = 0; i < n; i++) await member.propose(0, Buffer.from(`s${i}`));
    };
    await sequentially(8);
    expect(persistence.saves.at(-1)).toEqual({ entries: 1, syncHere: true });
    await Promise.all(Array.from({ length: 10 }, (_, i) => member.propose(0, Buffer.from(`b${i}`))));
    await sequentially(9);
    expect(persistence.saves.slice(-10)).toEqual([
      { entries: 10, syncHere: false },
      ...Array.from({ length: 7 }, () => ({ entries: 1, syncHere: false })),
      { entries: 1, syncHere: true },
      { entries: 1, syncHere: true },
    ]);
  });

  it('writes a smaller burst in one write', async () => {
    persistence.holding = true;
    const proposals = Array.from({ length: 40 }, (_, i) => member.propose(0, Buffer.from(`q${i}`)));
    await waitFor('the write', () => persistence.writes.length === 1);
    expect(persistence.writes[0].entries).toBe(40);
    persistence.writes[0].release();
    await Promise.all(proposals);
    expect(persistence.writes).toHaveLength(1);
  });
});

describe('RaftMember request timeout', () => {
  it("fails a proposal that is not applied within the request timeout with etcd's timeout error", async () => {
    const storage = new MemoryStorage();
    storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    const persistence = new HeldPersistence();
    const member = new RaftMember({
      id: 1n, storage, stateMachine: new RecordingStateMachine(), persistence, tickMs: 10, electionTicks: 10,
      snapshotCount: 1_000_000, requestTimeoutMs: 200, rand: seededRandom(1),
    });
    try {
      await member.start();
      await waitFor('leadership', () => member.isLeader);
      await member.propose(0, Buffer.from('warm-up'));
      const answeredInTime = member.propose(0, Buffer.from('quick'));
      await expect(answeredInTime).resolves.toBeDefined();

      persistence.holding = true; // the next write never completes: its proposal cannot be applied
      const started = performance.now();
      const stuck = member.propose(0, Buffer.from('stuck')).then(
        () => 'applied',
        (e: Error) => e.message,
      );
      let giveUp: NodeJS.Timeout | undefined;
      const stillPending = new Promise<string>((resolve) => {
        giveUp = setTimeout(() => resolve('still pending after 2 s'), 2000);
      });
      expect(await Promise.race([stuck, stillPending])).toBe('etcdserver: request timed out');
      clearTimeout(giveUp);
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(195);
      expect(waited).toBeLessThan(2000);
    } finally {
      for (const w of persistence.writes) w.release();
      await member.stop();
    }
  });
});

describe('RaftMember snapshots', () => {
  /** Records what is applied; its snapshot is the list applied when the capture began, written out over `steps` turns. */
  class SteppedStateMachine extends RecordingStateMachine {
    steps = 20;
    stepsTaken = 0;
    override snapshot(): Uint8Array {
      return Buffer.from(this.applied.join(','));
    }
    captureSnapshot(): SnapshotSteps {
      const taken = this.applied.join(',');
      let left = this.steps;
      return {
        step: () => {
          this.stepsTaken++;
          return --left <= 0;
        },
        finish: () => Buffer.from(taken),
        take: () => {
          throw new Error('not streamed');
        },
        cancel: () => undefined,
      };
    }
  }

  it('captures the state at one applied index in steps, answering writes meanwhile, and saves it at that index', async () => {
    const storage = new MemoryStorage();
    storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    const events: string[] = [];
    const saved: Snapshot[] = [];
    const persistence: RaftPersistence = {
      save: () => Promise.resolve(),
      saveSnapshot: (snap) => {
        events.push(`snapshot at ${snap.metadata.index}`);
        saved.push(snap);
        return Promise.resolve();
      },
    };
    const machine = new SteppedStateMachine();
    const member = new RaftMember({
      id: 1n, storage, stateMachine: machine, persistence, tickMs: 10, electionTicks: 10, snapshotCount: 4,
      requestTimeoutMs: 5000, rand: seededRandom(1),
    });
    try {
      await member.start();
      await waitFor('leadership', () => member.isLeader);
      // index 2 is the leader's empty entry; these three make the applied index 5, four past the last snapshot
      for (let i = 0; i < 3; i++) await member.propose(0, Buffer.from(`w${i}`));
      await waitFor('the capture to begin', () => machine.stepsTaken > 0);
      await member.propose(0, Buffer.from('during')).then(() => events.push('answered during'));
      await waitFor('the snapshot', () => saved.length === 1);
      expect(events).toEqual(['answered during', 'snapshot at 5']);
      expect(machine.stepsTaken).toBe(20);
      // the state as it was at index 5, without the write answered meanwhile
      expect(Buffer.from(saved[0].data).toString()).toBe('w0,w1,w2');
      expect(machine.applied).toEqual(['w0', 'w1', 'w2', 'during']);
      expect(storage.snapshot().metadata.index).toBe(5);
    } finally {
      await member.stop();
    }
  });
});

describe('RaftMember snapshots streamed to disk', () => {
  /** Its streamed capture hands out the entries applied when the capture began, one per step, through one reused buffer. */
  class StreamedStateMachine extends RecordingStateMachine {
    chunkBytes?: number;
    readonly buffers = new Set<ArrayBufferLike>();
    captureSnapshot(opts?: { chunkBytes?: number }): SnapshotSteps {
      this.chunkBytes = opts?.chunkBytes;
      const items = this.applied.map((a) => `${a};`);
      const buf = Buffer.alloc(64);
      let i = 0;
      let pending = 0;
      return {
        step: () => {
          pending = buf.write(items[i++] ?? '');
          return i >= items.length;
        },
        take: () => {
          this.buffers.add(buf.buffer);
          return buf.subarray(0, pending);
        },
        finish: () => {
          throw new Error('streamed');
        },
        cancel: () => undefined,
      };
    }
  }

  /** Records what reaches its snapshot sink; each write is held until the test releases it. */
  function streamingPersistence() {
    const record = { chunks: [] as string[], held: [] as Array<() => void>, committed: 0, aborted: 0, saved: 0 };
    const persistence: RaftPersistence = {
      save: () => Promise.resolve(),
      saveSnapshot: () => {
        record.saved++;
        return Promise.resolve();
      },
      loadSnapshotData: () => Promise.resolve(Buffer.from(record.chunks.join(''))),
      createSnapshot: () =>
        Promise.resolve({
          write: (bytes: Uint8Array) => {
            record.chunks.push(Buffer.from(bytes).toString()); // copied: the capture reuses its buffer
            return new Promise<void>((resolve) => record.held.push(resolve));
          },
          commit: () => {
            record.committed++;
            return Promise.resolve();
          },
          abort: () => {
            record.aborted++;
            return Promise.resolve();
          },
        }),
    };
    return { record, persistence };
  }

  function loneMember(machine: StateMachine, persistence: RaftPersistence, storage = new MemoryStorage()): RaftMember {
    storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    return new RaftMember({
      id: 1n, storage, stateMachine: machine, persistence, tickMs: 10, electionTicks: 10, snapshotCount: 4,
      requestTimeoutMs: 5000, rand: seededRandom(1),
    });
  }

  it('writes each chunk as it is encoded, answering writes while one is on its way to disk; keeps only metadata', async () => {
    const storage = new MemoryStorage();
    const machine = new StreamedStateMachine();
    const { record, persistence } = streamingPersistence();
    const member = loneMember(machine, persistence, storage);
    try {
      await member.start();
      await waitFor('leadership', () => member.isLeader);
      for (let i = 0; i < 3; i++) await member.propose(0, Buffer.from(`w${i}`));
      await waitFor('the first chunk', () => record.held.length === 1);
      expect(machine.chunkBytes).toBeGreaterThan(0);
      // the first chunk's write is held: the member still answers
      await member.propose(0, Buffer.from('during'));
      expect(record.chunks).toEqual(['w0;']);
      for (let n = 1; n < 3; n++) {
        record.held[n - 1]();
        await waitFor(`chunk ${n + 1}`, () => record.held.length === n + 1);
      }
      expect(record.committed).toBe(0);
      record.held[2]();
      await waitFor('the commit', () => record.committed === 1);
      // the state as it was at index 5, written through one buffer; saveSnapshot (a whole snapshot) never used
      expect(record.chunks.join('')).toBe('w0;w1;w2;');
      expect(machine.buffers.size).toBe(1);
      expect(record.saved).toBe(0);
      expect(record.aborted).toBe(0);
      expect(storage.snapshot().metadata.index).toBe(5);
      expect(storage.snapshot().data.byteLength).toBe(0); // read back from disk when a follower needs it
    } finally {
      await member.stop();
    }
  });

  it('a member stopped in the middle of a streamed snapshot aborts it: nothing is committed', async () => {
    const storage = new MemoryStorage();
    const machine = new StreamedStateMachine();
    const { record, persistence } = streamingPersistence();
    const member = loneMember(machine, persistence, storage);
    await member.start();
    await waitFor('leadership', () => member.isLeader);
    for (let i = 0; i < 3; i++) await member.propose(0, Buffer.from(`w${i}`));
    await waitFor('the first chunk', () => record.held.length === 1);
    const stopped = member.stop();
    record.held[0]();
    await stopped;
    expect(record.aborted).toBe(1);
    expect(record.committed).toBe(0);
    expect(record.chunks).toEqual(['w0;']);
    expect(storage.snapshot().metadata.index).toBe(1);
  });
});

/** Counts turns of the event loop: a probe that reschedules itself with setImmediate until stopped. */
function loopTurns(): { readonly turns: number; stop: () => void } {
  let running = true;
  const counter = { turns: 0, stop: () => (running = false) };
  const probe = () => {
    counter.turns++;
    if (running) setImmediate(probe);
  };
  setImmediate(probe);
  return counter;
}

/** Member 1 of a two-voter cluster, at index 1; the tests play member 2, its leader, through step(). */
function secondOfTwo(stateMachine: StateMachine, sent: Message[] = [], log: string[] = []): RaftMember {
  const storage = new MemoryStorage();
  storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: [1n, 2n], learners: [] } } });
  storage.setHardState({ term: 1, vote: 0n, commit: 1 });
  return new RaftMember({
    id: 1n, storage, stateMachine, tickMs: 1000, electionTicks: 10, snapshotCount: 1_000_000, requestTimeoutMs: 5000,
    rand: seededRandom(1), transport: { send: (ms) => sent.push(...ms) }, log: (l) => log.push(l),
    persistence: { save: () => Promise.resolve(), saveSnapshot: () => Promise.resolve() },
  });
}

describe('RaftMember installing a snapshot from its leader', () => {
  it('restores it in steps while the event loop turns, and counts it applied only once done', async () => {
    const sent: Message[] = [];
    const log: string[] = [];
    let loop: ReturnType<typeof loopTurns> | undefined;
    class SteppedRestore extends RecordingStateMachine {
      restored = '';
      turnsAtSteps: number[] = [];
      /** the member's applied index at each step */
      seenAtSteps: string[] = [];
      restoreInSteps(data: Uint8Array): RestoreSteps {
        let left = 20;
        return {
          step: () => {
            this.turnsAtSteps.push(loop!.turns);
            this.seenAtSteps.push(`applied ${member.appliedIndex}`);
            return --left <= 0;
          },
          finish: () => {
            this.restored = Buffer.from(data).toString();
          },
        };
      }
    }
    const acked = () => sent.some((m) => m.type === MessageType.MsgAppResp && m.to === 2n && m.index === 10);
    const machine = new SteppedRestore();
    const member = secondOfTwo(machine, sent, log);
    try {
      await member.start();
      loop = loopTurns();
      const snapshot: Snapshot = { data: Buffer.from('state at 10'), metadata: { index: 10, term: 2, confState: { voters: [1n, 2n], learners: [] } } };
      member.step({ type: MessageType.MsgSnap, from: 2n, to: 1n, term: 2, logTerm: 0, index: 0, entries: [], commit: 10, snapshot, reject: false, rejectHint: 0 });
      await waitFor('the restore', () => machine.restored !== '');
      expect(machine.seenAtSteps).toEqual(Array.from({ length: 20 }, () => 'applied 1'));
      // a turn of the event loop between every two steps
      const gaps = machine.turnsAtSteps.slice(1).map((t, i) => t - machine.turnsAtSteps[i]);
      expect(gaps.every((g) => g >= 1)).toBe(true);
      expect(machine.restored).toBe('state at 10');
      await waitFor('the applied index', () => member.appliedIndex === 10);
      expect(log.some((l) => l.includes('installed the snapshot at index 10'))).toBe(true);
      // the log's new start is acknowledged once the snapshot is durable, as etcd's raft does (not held for the restore)
      await waitFor('the acknowledgement', acked);
    } finally {
      loop?.stop();
      await member.stop();
    }
  });
});

describe('RaftMember catching up on a long log', () => {
  it('applies the backlog in slices of about 1 MiB with turns of the event loop between them', async () => {
    let loop: ReturnType<typeof loopTurns> | undefined;
    const turnOfApply: number[] = [];
    class TurnRecorder extends RecordingStateMachine {
      override apply(kind: number, payload: Buffer, index: number): unknown {
        turnOfApply.push(loop!.turns);
        return super.apply(kind, payload, index);
      }
    }
    const member = secondOfTwo(new TurnRecorder());
    try {
      await member.start();
      loop = loopTurns();
      // 4,000 committed entries of 1 KiB (plus the 9-byte envelope the member expects): about 4 MiB of backlog
      const payload = Buffer.alloc(1024, 'x');
      const entries: Entry[] = Array.from({ length: 4000 }, (_, i) => {
        const data = Buffer.alloc(9 + payload.length);
        payload.copy(data, 9);
        return { index: i + 2, term: 2, type: EntryType.Normal, data };
      });
      member.step({ type: MessageType.MsgApp, from: 2n, to: 1n, term: 2, logTerm: 1, index: 1, entries, commit: 4001, reject: false, rejectHint: 0 });
      await waitFor('the backlog to be applied', () => member.appliedIndex === 4001);
      const slices = new Set(turnOfApply).size;
      expect(slices).toBeGreaterThanOrEqual(4);
      expect(slices).toBeLessThanOrEqual(8);
    } finally {
      loop?.stop();
      await member.stop();
    }
  });
});

describe('RaftMember leading two voters', () => {
  it('answers a committed proposal before it tells the follower the new commit index', async () => {
    const storage = new MemoryStorage();
    storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters: [1n, 2n], learners: [] } } });
    storage.setHardState({ term: 1, vote: 0n, commit: 1 });
    const events: string[] = [];
    let member: RaftMember | undefined = undefined;
    // member 2, played here: grants every vote and acknowledges every append, a turn later as a network would
    const answer = (m: Message): void => {
      const reply = { from: 2n, to: 1n, term: m.term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
      if (m.type === MessageType.MsgPreVote) member!.step({ ...reply, type: MessageType.MsgPreVoteResp });
      else if (m.type === MessageType.MsgVote) member!.step({ ...reply, type: MessageType.MsgVoteResp });
      else if (m.type === MessageType.MsgApp) member!.step({ ...reply, type: MessageType.MsgAppResp, index: m.index + m.entries.length });
      else if (m.type === MessageType.MsgHeartbeat) member!.step({ ...reply, type: MessageType.MsgHeartbeatResp });
    };
    const transport = {
      send: (ms: Message[]) => {
        for (const m of ms) {
          if (m.type === MessageType.MsgApp) events.push(m.entries.length > 0 ? `append ${m.entries.at(-1)!.index}` : `commit ${m.commit}`);
          setImmediate(() => answer(m));
        }
      },
    };
    const persistence = new HeldPersistence();
    member = new RaftMember({
      id: 1n, storage, stateMachine: new RecordingStateMachine(), tickMs: 5, electionTicks: 10, snapshotCount: 1_000_000,
      requestTimeoutMs: 5000, rand: seededRandom(1), transport, persistence,
    });
    try {
      await member.start();
      await waitFor('leadership', () => member!.isLeader);
      await member.propose(0, Buffer.from('warm-up'));
      await settle();
      events.length = 0;
      const index = (await member.propose(0, Buffer.from('x'))) as number;
      events.push(`answered ${index}`);
      await waitFor('the commit index sent on', () => events.includes(`commit ${index}`));
      expect(events.filter((e) => !e.startsWith('commit') || e === `commit ${index}`)).toEqual([`append ${index}`, `answered ${index}`, `commit ${index}`]);
      // a leader of others overlaps its own write with theirs: it never asks for the fdatasync on its thread
      for (let i = 0; i < 10; i++) await member.propose(0, Buffer.from(`s${i}`));
      expect(persistence.saves.length).toBeGreaterThan(10);
      expect(persistence.saves.filter((w) => w.syncHere)).toEqual([]);
    } finally {
      await member.stop();
    }
  });
});
