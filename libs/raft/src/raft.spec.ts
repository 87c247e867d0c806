import { TestCluster } from '../test/harness';
import { NoLeaderError, ProposalDroppedError } from './errors';
import { MemoryStorage } from './storage';
import { ConfChangeType, Entry, EntryType, MessageType, StateType } from './types';

const enc = (s: string) => new TextEncoder().encode(s);
const ids = [1n, 2n, 3n];

/** Storage whose log holds entries with the given terms at indexes 2, 3, ... (index 1 is the bootstrap snapshot). */
function storageWithTerms(terms: number[], voters = ids, hsTerm = Math.max(1, ...terms)): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, confState: { voters, learners: [] } } });
  const ents: Entry[] = terms.map((term, i) => ({ term, index: i + 2, type: EntryType.Normal, data: enc(`${term}/${i + 2}`) }));
  s.append(ents);
  s.setHardState({ term: hsTerm, vote: 0n, commit: 1 });
  return s;
}

function logTerms(c: TestCluster, id: bigint): number[] {
  const raw = c.get(id).raw;
  const out: number[] = [];
  for (let i = 2; i <= raw.lastIndex(); i++) out.push(raw.logTerm(i)!);
  return out;
}

describe('election', () => {
  it('elects a leader with a majority and everyone follows it', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    expect(c.get(1n).raw.raft.state).toBe(StateType.Leader);
    for (const id of [2n, 3n]) expect(c.get(id).raw.raft.lead).toBe(1n);
    // The new leader's empty entry is committed everywhere.
    expect(c.get(3n).raw.raft.raftLog.committed).toBe(2);
  });

  it('elects a leader through randomized timeouts alone', () => {
    const c = new TestCluster(ids);
    for (let i = 0; i < 40 && !c.leader(); i++) c.tickAll();
    expect(c.leader()).toBeDefined();
  });

  it('a candidate with a stale log does not win', () => {
    const c = new TestCluster([]);
    c.add(1n, storageWithTerms([1]));
    c.add(2n, storageWithTerms([1, 2]));
    c.add(3n, storageWithTerms([1, 2]));
    c.elect(1n);
    expect(c.get(1n).raw.raft.state).not.toBe(StateType.Leader);
  });

  it('a single-node cluster elects itself', () => {
    const c = new TestCluster([1n]);
    c.elect(1n);
    expect(c.get(1n).raw.raft.state).toBe(StateType.Leader);
  });
});

describe('PreVote and CheckQuorum', () => {
  it('a partitioned node with PreVote does not inflate its term or disrupt the leader on rejoin', () => {
    const c = new TestCluster(ids, { preVote: true, checkQuorum: true });
    c.elect(1n);
    const term = c.get(1n).raw.raft.term;
    c.isolate(3n);
    for (let i = 0; i < 100; i++) {
      c.tick(3n);
      c.stabilize();
    }
    expect(c.get(3n).raw.raft.term).toBe(term);
    c.heal();
    c.tickAll(5);
    expect(c.get(1n).raw.raft.state).toBe(StateType.Leader);
    expect(c.get(1n).raw.raft.term).toBe(term);
  });

  it('without PreVote the same partition bumps the term (control)', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    const term = c.get(1n).raw.raft.term;
    c.isolate(3n);
    for (let i = 0; i < 100; i++) {
      c.tick(3n);
      c.stabilize();
    }
    expect(c.get(3n).raw.raft.term).toBeGreaterThan(term);
  });

  it('CheckQuorum: a leader that hears from no quorum steps down', () => {
    const c = new TestCluster(ids, { checkQuorum: true });
    c.elect(1n);
    c.isolate(1n);
    for (let i = 0; i < 25; i++) {
      c.tick(1n);
      c.stabilize();
    }
    expect(c.get(1n).raw.raft.state).toBe(StateType.Follower);
  });

  it('CheckQuorum lease: followers ignore a disruptive vote request while the leader is alive', () => {
    const c = new TestCluster(ids, { checkQuorum: true });
    c.elect(1n);
    const term = c.get(1n).raw.raft.term;
    c.isolate(3n);
    for (let i = 0; i < 30; i++) {
      c.tick(3n);
      c.stabilize();
    }
    c.heal();
    c.drop = (m) => m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp;
    c.get(3n).raw.campaign(); // higher term, but 1 and 2 heard from the leader recently: they ignore it
    c.stabilize();
    expect(c.get(2n).raw.raft.vote === 3n).toBe(false);
    expect(c.get(2n).raw.raft.term).toBe(term);
    expect(c.get(3n).raw.raft.state).not.toBe(StateType.Leader);
    expect(c.get(1n).raw.raft.state).toBe(StateType.Leader);
  });
});

describe('commitment (figure 8)', () => {
  function setup(bug = false): TestCluster {
    const c = new TestCluster([]);
    const cfg = bug ? { plantedBugs: { commitOldTermByCounting: true } } : {};
    c.add(1n, storageWithTerms([1, 2], ids, 2), cfg); // index 3 is from the old term 2
    c.add(2n, storageWithTerms([1], ids, 2), cfg);
    c.add(3n, storageWithTerms([1], ids, 2), cfg);
    c.drop = (m) => m.type === MessageType.MsgApp; // replicate by hand
    c.elect(1n);
    expect(c.get(1n).raw.raft.state).toBe(StateType.Leader);
    return c;
  }
  const ack = (c: TestCluster, index: number) => {
    const r = c.get(1n).raw.raft;
    c.get(1n).raw.step({ type: MessageType.MsgAppResp, from: 2n, to: 1n, term: r.term, logTerm: 0, index, entries: [], commit: 0, reject: false, rejectHint: 0 });
  };

  it('never commits an entry of an older term by counting replicas', () => {
    const c = setup();
    ack(c, 3); // a majority (1, 2) holds the term-2 entry at index 3
    expect(c.get(1n).raw.raft.raftLog.committed).toBe(1);
    ack(c, 4); // the leader's own-term entry at index 4 reaches a majority: commits 3 and 4
    expect(c.get(1n).raw.raft.raftLog.committed).toBe(4);
  });

  it('the planted bug does commit it (so the simulator test is meaningful)', () => {
    const c = setup(true);
    ack(c, 3);
    expect(c.get(1n).raw.raft.raftLog.committed).toBe(3);
  });
});

describe('log replication (figure 7) and fast backtracking', () => {
  // Leader log terms for indexes 2..10 (figure 7, index 1 is the shared snapshot), leader term 8.
  const leaderTerms = [1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: Record<string, number[]> = {
    a: [1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 4],
    c: [1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 4, 4, 4, 4],
    f: [1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, terms] of Object.entries(followers)) {
    it(`brings follower (${name}) in line with the leader`, () => {
      const c = new TestCluster([]);
      c.add(1n, storageWithTerms(leaderTerms, ids, 8));
      c.add(2n, storageWithTerms(terms, ids, Math.max(...terms)));
      c.add(3n, storageWithTerms([], ids, 1));
      c.elect(1n);
      expect(c.get(1n).raw.raft.state).toBe(StateType.Leader);
      const before = c.sent.length;
      c.tickAll(3);
      const expected = [...leaderTerms, c.get(1n).raw.raft.term];
      expect(logTerms(c, 2n)).toEqual(expected);
      expect(c.get(2n).raw.raft.raftLog.committed).toBe(expected.length + 1);
      const rejections = c.sent.slice(before).filter((m) => m.type === MessageType.MsgAppResp && m.reject && m.from === 2n).length;
      // Conflict hints (index + term) skip whole terms: a handful of round trips, not one per entry.
      expect(rejections).toBeLessThanOrEqual(3);
    });
  }
});

describe('flow control', () => {
  it('limits in-flight appends per follower by count', () => {
    const c = new TestCluster([1n, 2n], { maxInflightMsgs: 2, maxSizePerMsg: 1 });
    c.elect(1n);
    c.drop = (m) => m.type === MessageType.MsgAppResp;
    const before = c.sent.length;
    for (let i = 0; i < 10; i++) {
      c.get(1n).raw.propose(enc(`x${i}`));
      c.stabilize();
    }
    expect(c.sent.slice(before).filter((m) => m.type === MessageType.MsgApp && m.entries.length > 0).length).toBe(2);
    c.heal();
    c.tickAll(3);
    expect(c.get(2n).raw.lastIndex()).toBe(c.get(1n).raw.lastIndex());
  });

  it('limits in-flight appends per follower by bytes', () => {
    const c = new TestCluster([1n, 2n], { maxInflightMsgs: 100, maxInflightBytes: 100, maxSizePerMsg: 1 });
    c.elect(1n);
    c.drop = (m) => m.type === MessageType.MsgAppResp;
    const before = c.sent.length;
    for (let i = 0; i < 10; i++) {
      c.get(1n).raw.propose(new Uint8Array(64));
      c.stabilize();
    }
    expect(c.sent.slice(before).filter((m) => m.type === MessageType.MsgApp && m.entries.length > 0).length).toBe(2);
  });

  it('batches a burst of proposals into one append', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    const before = c.sent.length;
    c.get(1n).raw.proposeBatch(Array.from({ length: 100 }, (_, i) => enc(`b${i}`)));
    c.stabilize();
    const apps = c.sent.slice(before).filter((m) => m.type === MessageType.MsgApp && m.entries.length > 0);
    expect(apps.length).toBe(2); // one per follower
    expect(apps[0].entries.length).toBe(100);
  });

  it('drops proposals beyond the uncommitted size limit', () => {
    const c = new TestCluster(ids, { maxUncommittedEntriesSize: 100 });
    c.elect(1n);
    c.isolate(1n);
    c.get(1n).raw.propose(new Uint8Array(80));
    expect(() => c.get(1n).raw.propose(new Uint8Array(80))).toThrow(ProposalDroppedError);
  });
});

describe('proposals', () => {
  it('a follower forwards proposals to the leader', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.get(3n).raw.propose(enc('hello'));
    c.stabilize();
    for (const id of ids) expect(c.get(id).applied.some((e) => new TextDecoder().decode(e.data) === 'hello')).toBe(true);
  });

  it('fails fast with NoLeaderError when no leader is known', () => {
    const c = new TestCluster(ids);
    expect(() => c.get(2n).raw.propose(enc('x'))).toThrow(NoLeaderError);
    expect(() => c.get(2n).raw.readIndex(enc('r'))).toThrow(NoLeaderError);
  });
});

describe('ReadIndex', () => {
  it('leader serves a batch of reads after one heartbeat round', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    const before = c.sent.length;
    for (let i = 0; i < 5; i++) c.get(1n).raw.readIndex(enc(`r${i}`));
    c.stabilize();
    const rs = c.get(1n).readStates;
    expect(rs.map((r) => new TextDecoder().decode(r.requestCtx))).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(rs.every((r) => r.index === c.get(1n).raw.raft.raftLog.committed)).toBe(true);
    expect(c.sent.slice(before).filter((m) => m.type === MessageType.MsgHeartbeat).length).toBe(2);
  });

  it('a follower gets a read index from the leader', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.get(2n).raw.readIndex(enc('f'));
    c.stabilize();
    expect(c.get(2n).readStates.length).toBe(1);
    expect(c.get(2n).readStates[0].index).toBe(2);
  });

  it('an isolated leader cannot serve reads', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.isolate(1n);
    c.get(1n).raw.readIndex(enc('stale'));
    c.stabilize();
    expect(c.get(1n).readStates.length).toBe(0);
  });

  it('a new leader waits until it commits an entry of its term', () => {
    const c = new TestCluster(ids);
    c.drop = (m) => m.type === MessageType.MsgAppResp;
    c.elect(1n);
    c.get(1n).raw.readIndex(enc('early'));
    c.stabilize();
    expect(c.get(1n).readStates.length).toBe(0);
    c.heal();
    c.tickAll(2);
    expect(c.get(1n).readStates.length).toBe(1);
    expect(c.get(1n).readStates[0].index).toBe(2);
  });
});

describe('membership', () => {
  it('adds a learner (via snapshot), which replicates but cannot vote or campaign, then promotes it', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.add(4n, new MemoryStorage());
    c.get(1n).raw.proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 4n });
    c.tickAll(3);
    expect(c.get(1n).confState.learners).toEqual([4n]);
    expect(c.get(4n).raw.lastIndex()).toBe(c.get(1n).raw.lastIndex());
    expect(c.get(4n).confState.learners).toEqual([4n]);
    const term = c.get(4n).raw.raft.term;
    for (let i = 0; i < 50; i++) c.tick(4n);
    c.stabilize();
    expect(c.get(4n).raw.raft.term).toBe(term);
    expect(c.get(4n).raw.raft.state).toBe(StateType.Follower);
    // learner votes do not count: with 2 and 3 rejecting, 4's vote cannot elect anybody
    expect(c.get(1n).raw.raft.prs.voterIds()).toEqual(ids);

    c.get(1n).raw.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: 4n });
    c.tickAll(3);
    expect(c.get(2n).confState.voters).toEqual([1n, 2n, 3n, 4n]);
  });

  it('refuses a second conf change while one is pending', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.get(1n).raw.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 3n });
    expect(() => c.get(1n).raw.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 2n })).toThrow(ProposalDroppedError);
  });

  it('removing the leader hands leadership to a caught-up voter', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.get(1n).raw.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 1n });
    c.stabilize();
    expect(c.get(1n).raw.raft.state).toBe(StateType.Follower);
    const l = c.leader();
    expect(l && l.id !== 1n).toBe(true);
    expect(l!.raw.raft.prs.voterIds()).toEqual([2n, 3n]);
    l!.raw.propose(enc('after'));
    c.stabilize();
    expect(c.get(2n).applied.at(-1)!.data).toEqual(enc('after'));
  });

  it('removing a follower shrinks the quorum', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.get(1n).raw.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 3n });
    c.stabilize();
    c.isolate(3n);
    c.get(1n).raw.propose(enc('two of two'));
    c.stabilize();
    expect(c.get(2n).applied.at(-1)!.data).toEqual(enc('two of two'));
  });
});

describe('leadership transfer', () => {
  it('transfers to a caught-up follower with MsgTimeoutNow', () => {
    const c = new TestCluster(ids, { preVote: true, checkQuorum: true });
    c.elect(1n);
    c.get(1n).raw.transferLeader(3n);
    c.stabilize();
    expect(c.leader()?.id).toBe(3n);
    expect(c.sent.some((m) => m.type === MessageType.MsgTimeoutNow && m.to === 3n)).toBe(true);
  });

  it('catches a lagging target up before transferring, and drops proposals meanwhile', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.isolate(3n);
    c.get(1n).raw.propose(enc('lag'));
    c.stabilize();
    c.heal();
    c.get(1n).raw.transferLeader(3n);
    expect(() => c.get(1n).raw.propose(enc('during'))).toThrow(ProposalDroppedError);
    c.stabilize();
    expect(c.leader()?.id).toBe(3n);
  });
});

describe('snapshots', () => {
  it('a lagging follower receives the snapshot after compaction and then catches up', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.isolate(3n);
    for (let i = 0; i < 20; i++) c.get(1n).raw.propose(enc(`e${i}`));
    c.stabilize();
    const leader = c.get(1n);
    const applied = leader.applied.at(-1)!.index;
    leader.storage.createSnapshot(applied, leader.confState, enc('state'));
    leader.storage.compact(applied);
    c.heal();
    c.tickAll(3);
    expect(c.sent.some((m) => m.type === MessageType.MsgSnap && m.to === 3n)).toBe(true);
    expect(c.get(3n).storage.snapshot().metadata.index).toBe(applied);
    expect(c.get(3n).storage.snapshot().data).toEqual(enc('state'));
    c.get(1n).raw.propose(enc('after-snap'));
    c.stabilize();
    expect(c.get(3n).raw.lastIndex()).toBe(c.get(1n).raw.lastIndex());
    expect(c.get(3n).applied.at(-1)!.data).toEqual(enc('after-snap'));
  });

  it('reportSnapshot failure makes the leader retry', () => {
    const c = new TestCluster(ids);
    c.elect(1n);
    c.isolate(3n);
    for (let i = 0; i < 5; i++) c.get(1n).raw.propose(enc(`e${i}`));
    c.stabilize();
    const leader = c.get(1n);
    const applied = leader.applied.at(-1)!.index;
    leader.storage.createSnapshot(applied, leader.confState, enc('s'));
    leader.storage.compact(applied);
    c.drop = (m) => m.type === MessageType.MsgSnap; // lost
    c.tickAll(2);
    const raw = leader.raw;
    expect(raw.status().progress!.get(3n)!.state).toBe('Snapshot');
    raw.reportSnapshot(3n, 'Failure' as never);
    expect(raw.status().progress!.get(3n)!.state).toBe('Probe');
    c.heal();
    c.tickAll(3);
    expect(c.get(3n).raw.lastIndex()).toBe(raw.lastIndex());
  });
});

describe('asyncLeaderPersist (the leader writes its log while replicating it)', () => {
  /** Persists a node's Ready into its storage and advances (what the application does once its write is durable). */
  function persist(n: { raw: import('./rawnode').RawNode; storage: MemoryStorage }, rd: import('./rawnode').Ready): void {
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    n.raw.advance(rd);
  }

  it('a lone voter commits its entry only after advance reports it persisted', () => {
    const c = new TestCluster([1n], { asyncLeaderPersist: true });
    const n = c.get(1n);
    n.raw.campaign();
    const rd = n.raw.ready();
    expect(n.raw.raft.state).toBe(StateType.Leader);
    expect(rd.entries).toHaveLength(1);
    expect(rd.committedEntries).toHaveLength(0);
    persist(n, rd);
    const next = n.raw.ready();
    expect(next.committedEntries.map((e) => e.index)).toEqual([rd.entries[0].index]);
  });

  it('one follower ack does not commit while the leader has not persisted; the leader persisting does', () => {
    const c = new TestCluster(ids, { asyncLeaderPersist: true });
    c.elect(1n);
    const leader = c.get(1n);
    const committed = leader.raw.raft.raftLog.committed;
    leader.raw.propose(enc('x'));
    const rd = leader.raw.ready();
    const toTwo = rd.messages.find((m) => m.type === MessageType.MsgApp && m.to === 2n)!;
    expect(toTwo.entries.map((e) => e.index)).toEqual(rd.entries.map((e) => e.index));
    // follower 2 persists and acknowledges before the leader's own write finished
    const two = c.get(2n);
    two.raw.step({ ...toTwo });
    const rd2 = two.raw.ready();
    persist(two, rd2);
    for (const m of rd2.messages) leader.raw.step({ ...m });
    expect(leader.raw.raft.raftLog.committed).toBe(committed);
    // the leader's write completes: now two of three copies are durable
    persist(leader, rd);
    expect(leader.raw.raft.raftLog.committed).toBe(rd.entries[0].index);
    // and the new commit index goes out to the followers
    expect(leader.raw.ready().messages.some((m) => m.type === MessageType.MsgApp && m.commit === rd.entries[0].index)).toBe(true);
  });

  it('two follower acks commit without the leader copy (a quorum is durable)', () => {
    const c = new TestCluster(ids, { asyncLeaderPersist: true });
    c.elect(1n);
    const leader = c.get(1n);
    leader.raw.propose(enc('y'));
    const rd = leader.raw.ready();
    for (const id of [2n, 3n]) {
      const f = c.get(id);
      f.raw.step({ ...rd.messages.find((m) => m.type === MessageType.MsgApp && m.to === id)! });
      const frd = f.raw.ready();
      persist(f, frd);
      for (const m of frd.messages) leader.raw.step({ ...m });
    }
    expect(leader.raw.raft.raftLog.committed).toBe(rd.entries[0].index);
  });
});
