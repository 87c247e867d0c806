/**
 * Deterministic raft cluster simulator. Everything (network, faults, clients, disks) is driven by one seeded PRNG,
 * so a seed fully determines a run: a failing seed is replayed exactly with `--seed N`.
 *
 * Time is in units; every node ticks raft once per TICK units (each with its own phase). Messages take 1..maxDelay
 * units, may be dropped, duplicated, reordered, or blocked by (a)symmetric partitions. A node's durable state is its
 * MemoryStorage plus what the app persisted; a crash throws away the RawNode, the unpersisted Ready and the
 * in-memory state machine.
 */
import {
  ConfChangeType,
  ConfState,
  Entry,
  EntryType,
  MemoryStorage,
  Message,
  MessageType,
  NodeId,
  PlantedBugs,
  RawNode,
  Ready,
  SnapshotStatus,
  StateType,
  decodeConfChange,
  leaderMaySendBeforePersist,
  seededRandom,
} from '@nestcd/raft';
import { Checker, InvariantViolation } from './checker';

export const TICK = 10;
const ELECTION_TICK = 10;
const HEARTBEAT_TICK = 2;

export interface FaultMix {
  name: string;
  drop: number;
  dup: number;
  maxDelay: number;
  /** Per-tick probabilities. */
  partition: number;
  crash: number;
  slowDisk: number;
  confChange: number;
  transfer: number;
  write: number;
  read: number;
  /** Probability that a crash picks the current leader. */
  leaderCrash?: number;
  /** Per time unit (not per tick): crash the leader at an arbitrary moment, e.g. right after it appended. */
  leaderCrashPerUnit?: number;
  /** Max ticks a crashed node stays down (default 30). */
  maxDownTicks?: number;
  /** Per time unit: cut the leader off from everyone for 1..8 ticks (its new entries stay unreplicated). */
  isolateLeaderPerUnit?: number;
  /** Force one entry per MsgApp on every node (otherwise chosen per node). */
  tinyMessages?: boolean;
}

export const MIXES: FaultMix[] = [
  { name: 'calm', drop: 0, dup: 0, maxDelay: 4, partition: 0, crash: 0, slowDisk: 0, confChange: 0.01, transfer: 0.01, write: 0.5, read: 0.3 },
  { name: 'lossy', drop: 0.1, dup: 0.05, maxDelay: 15, partition: 0, crash: 0, slowDisk: 0.1, confChange: 0.01, transfer: 0.01, write: 0.5, read: 0.3 },
  { name: 'partitions', drop: 0.02, dup: 0.02, maxDelay: 8, partition: 0.04, crash: 0, slowDisk: 0, confChange: 0.01, transfer: 0.01, write: 0.5, read: 0.3 },
  { name: 'crashes', drop: 0.02, dup: 0.02, maxDelay: 8, partition: 0, crash: 0.03, slowDisk: 0.2, confChange: 0.01, transfer: 0.01, write: 0.5, read: 0.3 },
  { name: 'chaos', drop: 0.05, dup: 0.05, maxDelay: 12, partition: 0.03, crash: 0.03, slowDisk: 0.2, confChange: 0.02, transfer: 0.02, write: 0.5, read: 0.3 },
  // Figure-8 hunting: leaders are cut off or crash at arbitrary moments, right after appending, and every
  // MsgApp carries one entry, so entries of older terms often sit on a bare majority without a newer entry.
  { name: 'leader-churn', drop: 0.05, dup: 0.02, maxDelay: 6, partition: 0, crash: 0.03, slowDisk: 0.1, confChange: 0.01, transfer: 0.01, write: 1, read: 0.3, isolateLeaderPerUnit: 0.02, leaderCrashPerUnit: 0.01, maxDownTicks: 8, tinyMessages: true },
  { name: 'membership', drop: 0.03, dup: 0.03, maxDelay: 8, partition: 0.02, crash: 0.015, slowDisk: 0.1, confChange: 0.06, transfer: 0.02, write: 0.5, read: 0.3 },
];

export interface SimOptions {
  seed: number;
  nodes: number;
  mix: FaultMix;
  /** Ticks of faults before healing. */
  chaosTicks?: number;
  /** Ticks allowed after healing for a leader to commit a new entry on every voter. */
  livenessTicks?: number;
  plantedBugs?: PlantedBugs;
  /** Leaders send appends and heartbeats before persisting (raft's asyncLeaderPersist, as nestcd runs). */
  asyncLeaderPersist?: boolean;
  /** How many trailing events to keep for the failure trace. */
  traceLimit?: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  error?: string;
  trace?: string[];
  stats: { units: number; delivered: number; writesAcked: number; readsServed: number; elections: number; snapshotsSent: number; confChanges: number };
}

interface AppState {
  applied: number;
  hash: number;
  writes: number;
}

interface PendingRead {
  ctx: string;
  node: NodeId;
  startMaxCommit: number;
  index?: number;
}

interface SimNode {
  id: NodeId;
  storage: MemoryStorage;
  raw?: RawNode; // undefined while crashed/stopped
  stopped: boolean;
  app: AppState;
  confState: ConfState;
  pending?: { rd: Ready; doneAt: number };
  slowDisk: boolean;
  downUntil: number;
  reads: PendingRead[];
  sinceSnap: number;
}

interface Envelope {
  m: Message;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function hashStep(h: number, index: number, data: Uint8Array): number {
  // FNV-1a over index and data: identifies the applied sequence.
  h = Math.imul(h ^ index, 16777619) >>> 0;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i], 16777619) >>> 0;
  return h;
}

function encodeApp(s: AppState): Uint8Array {
  return enc.encode(JSON.stringify(s));
}
function decodeApp(d: Uint8Array): AppState {
  return JSON.parse(dec.decode(d)) as AppState;
}

export class Simulation {
  readonly rand: () => number;
  now = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  private queue = new Map<number, Envelope[]>();
  private blocked = new Set<string>(); // "from>to"
  private partitionHealAt = 0;
  readonly checker: Checker;
  private trace: string[] = [];
  private readonly traceLimit: number;
  private nextNodeId: bigint;
  private seq = 0;
  private pendingWrites = new Map<string, { node: NodeId }>();
  private reads = new Map<string, PendingRead>();
  private healed = false;
  private healAt: number;
  private livenessDeadline: number;
  private marker?: { data: string; index?: number; proposedAt: number };
  private livenessOk = false;
  private removedAt = new Map<NodeId, number>();
  readonly stats = { units: 0, delivered: 0, writesAcked: 0, readsServed: 0, elections: 0, snapshotsSent: 0, confChanges: 0 };
  private leaderIds = new Map<NodeId, number>(); // node -> term it was last seen leader in

  constructor(readonly opts: SimOptions) {
    this.rand = seededRandom(opts.seed * 2654435761 + 1);
    this.traceLimit = opts.traceLimit ?? 300;
    this.checker = new Checker();
    this.healAt = (opts.chaosTicks ?? 300) * TICK;
    this.livenessDeadline = this.healAt + (opts.livenessTicks ?? 120) * TICK;
    const voters: NodeId[] = [];
    for (let i = 1; i <= opts.nodes; i++) voters.push(BigInt(i));
    this.nextNodeId = BigInt(opts.nodes + 1);
    for (const id of voters) {
      const storage = new MemoryStorage();
      // Bootstrap from a snapshot at index 1 holding the initial configuration: nodes added later then always
      // receive a snapshot (with the configuration) rather than a log that does not mention the founders.
      const app: AppState = { applied: 1, hash: 0, writes: 0 };
      storage.applySnapshot({ data: encodeApp(app), metadata: { index: 1, term: 1, confState: { voters, learners: [] } } });
      storage.setHardState({ term: 1, vote: 0n, commit: 1 });
      this.addNode(id, storage);
    }
  }

  private addNode(id: NodeId, storage: MemoryStorage): SimNode {
    const n: SimNode = {
      id,
      storage,
      stopped: false,
      app: { applied: 0, hash: 0, writes: 0 },
      confState: { voters: [], learners: [] },
      slowDisk: false,
      downUntil: 0,
      reads: [],
      sinceSnap: 0,
    };
    this.nodes.set(id, n);
    this.start(n);
    return n;
  }

  private start(n: SimNode): void {
    const snap = n.storage.snapshot();
    n.app = snap.metadata.index > 0 ? decodeApp(snap.data) : { applied: 0, hash: 0, writes: 0 };
    n.confState = snap.metadata.confState;
    n.pending = undefined;
    n.reads = [];
    const nodeRand = seededRandom(Math.floor(this.rand() * 2 ** 32));
    n.raw = new RawNode({
      id: n.id,
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      storage: n.storage,
      applied: snap.metadata.index,
      // Small messages force multi-message catch-up (1 byte = one entry per MsgApp).
      maxSizePerMsg: this.opts.mix.tinyMessages ? 1 : [1, 64, 256, 4096][Math.floor(this.rand() * 4)],
      maxInflightMsgs: 4,
      maxInflightBytes: 2048,
      maxUncommittedEntriesSize: 1 << 16,
      checkQuorum: true,
      preVote: true,
      asyncLeaderPersist: this.opts.asyncLeaderPersist,
      rand: nodeRand,
      plantedBugs: this.opts.plantedBugs,
    });
    this.checker.onRestart(n.id, n.storage.hardStateSnapshot());
  }

  private log(s: string): void {
    this.trace.push(`t=${this.now} ${s}`);
    if (this.trace.length > this.traceLimit * 2) this.trace.splice(0, this.trace.length - this.traceLimit);
  }

  private fmtMsg(m: Message): string {
    let s = `${m.type} ${m.from}->${m.to} term=${m.term}`;
    if (m.type === MessageType.MsgApp) s += ` idx=${m.index} lt=${m.logTerm} n=${m.entries.length} commit=${m.commit}`;
    else if (m.type === MessageType.MsgAppResp) s += ` idx=${m.index}${m.reject ? ` REJECT hint=${m.rejectHint}/${m.logTerm}` : ''}`;
    else if (m.type === MessageType.MsgSnap) s += ` snap=${m.snapshot?.metadata.index}`;
    else if (m.reject) s += ' REJECT';
    else if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) s += ` last=${m.index}/${m.logTerm}`;
    return s;
  }

  alive(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.raw) out.push(n);
    return out;
  }

  private pick<T>(arr: T[]): T | undefined {
    return arr.length ? arr[Math.floor(this.rand() * arr.length)] : undefined;
  }

  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.alive()) {
      if (n.raw!.raft.state === StateType.Leader && (!best || n.raw!.raft.term > best.raw!.raft.term)) best = n;
    }
    return best;
  }

  // ------------------------------------------------------------------ network

  private send(m: Message): void {
    const mix = this.healed ? undefined : this.opts.mix;
    const key = `${m.from}>${m.to}`;
    if (this.blocked.has(key)) {
      this.log(`drop(partition) ${this.fmtMsg(m)}`);
      this.afterDrop(m);
      return;
    }
    if (mix && this.rand() < mix.drop) {
      this.log(`drop ${this.fmtMsg(m)}`);
      this.afterDrop(m);
      return;
    }
    const maxDelay = mix ? mix.maxDelay : 3;
    const copies = mix && this.rand() < mix.dup ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      const at = this.now + 1 + Math.floor(this.rand() * maxDelay);
      let q = this.queue.get(at);
      if (!q) this.queue.set(at, (q = []));
      q.push({ m: c === 0 ? m : { ...m } });
    }
    if (m.type === MessageType.MsgSnap) this.stats.snapshotsSent++;
  }

  private afterDrop(m: Message): void {
    const from = this.nodes.get(m.from);
    if (!from?.raw) return;
    if (m.type === MessageType.MsgSnap) from.raw.reportSnapshot(m.to, SnapshotStatus.Failure);
    else if (m.type === MessageType.MsgApp && this.rand() < 0.3) from.raw.reportUnreachable(m.to);
  }

  private deliver(env: Envelope): void {
    const m = { ...env.m }; // receivers may mutate (forwarding); keep duplicates independent
    const to = this.nodes.get(m.to);
    if (!to?.raw) {
      if (m.type === MessageType.MsgSnap) this.afterDrop(m);
      return;
    }
    this.stats.delivered++;
    this.log(`recv ${this.fmtMsg(m)}`);
    to.raw.step(m);
    if (m.type === MessageType.MsgSnap) {
      const from = this.nodes.get(m.from);
      from?.raw?.reportSnapshot(m.to, SnapshotStatus.Finish);
    }
  }

  // ------------------------------------------------------------------ ready handling

  private processReady(n: SimNode): void {
    const raw = n.raw!;
    if (n.pending) {
      if (this.now < n.pending.doneAt) return;
      const rd = n.pending.rd;
      n.pending = undefined;
      this.finishReady(n, rd);
      return;
    }
    if (!raw.hasReady()) return;
    const rd = raw.ready();
    if (this.opts.asyncLeaderPersist && raw.raft.state === StateType.Leader && rd.messages.length > 0) {
      // A leader's replication leaves before its own disk write (which may be slow, or lost in a crash).
      const early = rd.messages.filter((m) => leaderMaySendBeforePersist(m.type));
      rd.messages = rd.messages.filter((m) => !leaderMaySendBeforePersist(m.type));
      for (const m of early) {
        this.checker.onSend(m);
        this.send(m);
      }
    }
    if (n.slowDisk && (rd.entries.length > 0 || rd.hardState || rd.snapshot)) {
      n.pending = { rd, doneAt: this.now + 1 + Math.floor(this.rand() * 3 * TICK) };
      return;
    }
    this.finishReady(n, rd);
  }

  private finishReady(n: SimNode, rd: Ready): void {
    const raw = n.raw!;
    // 1. persist
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      this.log(`${n.id} persist snapshot ${rd.snapshot.metadata.index}`);
    }
    if (rd.entries.length) n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    this.checker.onPersist(n.id, rd, n.storage);
    if (rd.softState) {
      this.log(`${n.id} becomes ${rd.softState.raftState} term=${raw.raft.term} lead=${rd.softState.lead}`);
      if (rd.softState.raftState === StateType.Leader) this.stats.elections++;
    }
    // 2. send
    for (const m of rd.messages) {
      this.checker.onSend(m);
      this.send(m);
    }
    // 3. apply
    if (rd.snapshot) {
      n.app = decodeApp(rd.snapshot.data);
      n.confState = rd.snapshot.metadata.confState;
      this.checker.onApplySnapshot(n.id, rd.snapshot.metadata.index, n.app.hash);
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    for (const rs of rd.readStates) {
      const r = this.reads.get(dec.decode(rs.requestCtx));
      if (r && r.node === n.id && r.index === undefined) {
        r.index = rs.index;
        n.reads.push(r);
      }
    }
    raw.advance(rd);
    this.serveReads(n);
    this.maybeSnapshot(n);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index <= n.app.applied) return; // replay after a snapshot install
    if (e.index !== n.app.applied + 1) throw new InvariantViolation(`node ${n.id} applied ${e.index} after ${n.app.applied}`);
    n.app.applied = e.index;
    n.app.hash = hashStep(n.app.hash, e.index, e.data);
    this.checker.onApply(n.id, e, n.app.hash);
    n.sinceSnap++;
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      n.confState = n.raw!.applyConfChange(cc);
      this.log(`${n.id} apply conf ${ConfChangeType[cc.type]} ${cc.nodeId} @${e.index} -> voters=${n.confState.voters} learners=${n.confState.learners}`);
      if (cc.type === ConfChangeType.RemoveNode && !this.removedAt.has(cc.nodeId)) this.removedAt.set(cc.nodeId, this.now);
      return;
    }
    if (e.data.length === 0) return;
    n.app.writes++;
    const key = dec.decode(e.data);
    const w = this.pendingWrites.get(key);
    if (w && w.node === n.id) {
      this.pendingWrites.delete(key);
      this.stats.writesAcked++;
    }
    if (this.marker && this.marker.data === key && this.marker.index === undefined) this.marker.index = e.index;
  }

  private serveReads(n: SimNode): void {
    if (!n.reads.length) return;
    const keep: PendingRead[] = [];
    for (const r of n.reads) {
      if (r.index! <= n.app.applied) {
        this.reads.delete(r.ctx);
        this.stats.readsServed++;
        this.log(`${n.id} serve read ${r.ctx} at readIndex=${r.index} applied=${n.app.applied} (committed before start: ${r.startMaxCommit})`);
        this.checker.onReadServed(r.ctx, r.index!, r.startMaxCommit);
      } else keep.push(r);
    }
    n.reads = keep;
  }

  private maybeSnapshot(n: SimNode): void {
    if (n.sinceSnap < 15) return;
    const applied = n.app.applied;
    if (applied <= n.storage.snapshot().metadata.index) return;
    n.sinceSnap = 0;
    n.storage.createSnapshot(applied, n.confState, encodeApp(n.app));
    const compactTo = applied - 3;
    if (compactTo > n.storage.firstIndex()) n.storage.compact(compactTo);
  }

  // ------------------------------------------------------------------ faults and clients

  private crash(n: SimNode, until: number): void {
    this.log(`CRASH ${n.id} (pending ready lost: ${!!n.pending})`);
    n.raw = undefined;
    n.pending = undefined;
    n.downUntil = until;
  }

  private restart(n: SimNode): void {
    this.log(`RESTART ${n.id}`);
    this.start(n);
  }

  private faults(): void {
    const mix = this.opts.mix;
    const all = [...this.nodes.values()].filter((n) => !n.stopped);
    // partitions
    if (this.blocked.size && this.now >= this.partitionHealAt) {
      this.blocked.clear();
      this.log('partition healed');
    }
    if (!this.blocked.size && this.rand() < mix.partition) {
      const kind = this.rand();
      const ids = all.map((n) => n.id);
      let side: NodeId[];
      if (kind < 0.4) {
        const l = this.leader();
        side = l ? [l.id] : [this.pick(ids)!];
      } else {
        side = ids.filter(() => this.rand() < 0.5);
      }
      const asym = this.rand() < 0.3;
      for (const a of side)
        for (const b of ids) {
          if (side.includes(b)) continue;
          this.blocked.add(`${a}>${b}`);
          if (!asym) this.blocked.add(`${b}>${a}`);
        }
      this.partitionHealAt = this.now + (5 + Math.floor(this.rand() * 40)) * TICK;
      this.log(`PARTITION ${asym ? 'asymmetric ' : ''}[${side}] | rest until t=${this.partitionHealAt}`);
    }
    // crashes and restarts
    for (const n of all) {
      if (!n.raw && this.now >= n.downUntil) this.restart(n);
    }
    if (this.rand() < mix.crash) {
      const l = this.leader();
      const n = l && this.rand() < (mix.leaderCrash ?? 0.3) ? l : this.pick(this.alive().filter((x) => !x.stopped));
      if (n) this.crash(n, this.now + (1 + Math.floor(this.rand() * (mix.maxDownTicks ?? 30))) * TICK);
    }
    if (this.rand() < mix.slowDisk) {
      const n = this.pick(all);
      if (n) {
        n.slowDisk = !n.slowDisk;
        this.log(`${n.id} disk ${n.slowDisk ? 'slow' : 'fast'}`);
      }
    }
    if (this.rand() < mix.confChange) this.confChange();
    if (this.rand() < mix.transfer) {
      const l = this.leader();
      if (l) {
        const target = this.pick(l.raw!.raft.prs.voterIds().filter((v) => v !== l.id));
        if (target) {
          this.log(`TRANSFER ${l.id} -> ${target}`);
          l.raw!.transferLeader(target);
        }
      }
    }
  }

  private confChange(): void {
    const l = this.leader();
    if (!l) return;
    const prs = l.raw!.raft.prs;
    const voters = prs.voterIds();
    const learners = [...prs.learners];
    const n = this.opts.nodes;
    const choice = this.rand();
    let type: ConfChangeType;
    let id: NodeId;
    if (learners.length && choice < 0.5) {
      type = ConfChangeType.AddNode; // promote
      id = learners[0];
    } else if (voters.length > Math.max(2, n - 1) && choice < 0.8) {
      type = ConfChangeType.RemoveNode;
      id = this.pick([...voters])!; // may be the leader itself
    } else if (voters.length < n + 1 && !learners.length) {
      type = ConfChangeType.AddLearnerNode;
      id = this.nextNodeId;
    } else return;
    try {
      l.raw!.proposeConfChange({ type, nodeId: id });
    } catch (e) {
      this.log(`conf change ${ConfChangeType[type]} ${id} refused: ${(e as Error).message}`);
      return;
    }
    this.stats.confChanges++;
    this.log(`PROPOSE conf ${ConfChangeType[type]} ${id} via ${l.id}`);
    if (type === ConfChangeType.AddLearnerNode) {
      this.nextNodeId++;
      this.addNode(id, new MemoryStorage());
    }
  }

  private clients(): void {
    const mix = this.opts.mix;
    if (this.rand() < mix.write) {
      const n = this.pick(this.alive());
      if (n) {
        const data = `w${this.seq++}`;
        try {
          n.raw!.propose(enc.encode(data));
          this.pendingWrites.set(data, { node: n.id });
        } catch {
          /* no leader / dropped: the client would retry */
        }
      }
    }
    if (this.rand() < mix.read) {
      const n = this.pick(this.alive());
      if (n) {
        const ctx = `r${this.seq++}`;
        const r: PendingRead = { ctx, node: n.id, startMaxCommit: this.checker.maxDurableCommit() };
        try {
          n.raw!.readIndex(enc.encode(ctx));
          this.reads.set(ctx, r);
        } catch {
          /* no leader */
        }
      }
    }
  }

  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    this.log('HEAL: network healed, disks fast, crashed members restart');
    for (const n of this.nodes.values()) {
      n.slowDisk = false;
      if (!n.raw && !n.stopped) this.restart(n);
    }
  }

  private livenessStep(): void {
    const l = this.leader();
    if (!l) return;
    if (!this.marker || (this.marker.index === undefined && this.now - this.marker.proposedAt > 5 * TICK)) {
      const data = `L${this.seq++}`;
      try {
        l.raw!.propose(enc.encode(data));
        this.marker = { data, proposedAt: this.now };
      } catch {
        /* transfer in progress etc. */
      }
      return;
    }
    if (this.marker.index === undefined) return;
    for (const v of l.raw!.raft.prs.voterIds()) {
      const n = this.nodes.get(v);
      if (!n?.raw || n.app.applied < this.marker.index) return;
    }
    this.livenessOk = true;
  }

  // ------------------------------------------------------------------ main loop

  run(): SimResult {
    const phase = new Map<NodeId, number>();
    try {
      for (;;) {
        this.now++;
        this.stats.units++;
        const due = this.queue.get(this.now);
        if (due) {
          this.queue.delete(this.now);
          for (const env of due) this.deliver(env);
        }
        if (this.now % TICK === 0) {
          if (!this.healed && this.now >= this.healAt) this.heal();
          if (!this.healed) {
            this.faults();
          }
          this.clients();
          // stop removed nodes a while after their removal was applied somewhere
          for (const [id, at] of this.removedAt) {
            const n = this.nodes.get(id);
            if (n && !n.stopped && this.now - at > 3 * ELECTION_TICK * TICK) {
              n.stopped = true;
              n.raw = undefined;
              this.log(`STOP removed node ${id}`);
            }
          }
          if (this.healed) {
            this.livenessStep();
            if (this.livenessOk) break;
            if (this.now > this.livenessDeadline) {
              throw new InvariantViolation(`liveness: no leader committed a new entry on all voters within ${(this.opts.livenessTicks ?? 120)} ticks after healing`);
            }
          }
        }
        if (!this.healed && !this.blocked.size && this.opts.mix.isolateLeaderPerUnit && this.rand() < this.opts.mix.isolateLeaderPerUnit) {
          const l = this.leader();
          if (l) {
            for (const o of this.nodes.keys()) {
              if (o === l.id) continue;
              this.blocked.add(`${l.id}>${o}`);
              this.blocked.add(`${o}>${l.id}`);
            }
            this.partitionHealAt = this.now + (1 + Math.floor(this.rand() * 8)) * TICK;
            this.log(`ISOLATE leader ${l.id} until t=${this.partitionHealAt}`);
          }
        }
        if (!this.healed && this.opts.mix.leaderCrashPerUnit && this.rand() < this.opts.mix.leaderCrashPerUnit) {
          const l = this.leader();
          if (l) this.crash(l, this.now + (1 + Math.floor(this.rand() * (this.opts.mix.maxDownTicks ?? 30))) * TICK);
        }
        for (const n of this.nodes.values()) {
          if (!n.raw) continue;
          let ph = phase.get(n.id);
          if (ph === undefined) phase.set(n.id, (ph = Math.floor(this.rand() * TICK)));
          if (this.now % TICK === ph) n.raw.tick();
        }
        for (const n of this.nodes.values()) if (n.raw) this.processReady(n);
        this.checkStep();
      }
      this.checker.finalCheck(this.alive().map((n) => ({ id: n.id, raw: n.raw! })));
      return { seed: this.opts.seed, ok: true, stats: this.stats };
    } catch (e) {
      const msg = e instanceof InvariantViolation ? e.message : `unexpected error: ${(e as Error).stack}`;
      this.log(`FAILED: ${msg}`);
      return { seed: this.opts.seed, ok: false, error: msg, trace: this.trace.slice(-this.traceLimit), stats: this.stats };
    }
  }

  private checkStep(): void {
    for (const n of this.nodes.values()) {
      if (!n.raw) continue;
      const r = n.raw.raft;
      this.checker.onCommitIndex(n.id, r.raftLog.committed);
      if (r.state === StateType.Leader && this.leaderIds.get(n.id) !== r.term) {
        this.leaderIds.set(n.id, r.term);
        this.checker.onLeader(n.id, r.term, n.raw);
      }
    }
  }
}

/** Choose cluster size and fault mix from the seed, so a seed alone identifies a run. */
export function optionsForSeed(seed: number, overrides: Partial<SimOptions> = {}): SimOptions {
  const nodes = seed % 2 === 0 ? 3 : 5;
  const mix = MIXES[Math.floor(seed / 2) % MIXES.length];
  // Two seeds in three run leaders as nestcd does (appends sent before the leader's own write).
  const asyncLeaderPersist = seed % 3 !== 0;
  return { seed, nodes, mix, asyncLeaderPersist, ...overrides };
}

export function runSeed(seed: number, overrides: Partial<SimOptions> = {}): SimResult {
  return new Simulation(optionsForSeed(seed, overrides)).run();
}

export function formatFailure(r: SimResult, opts: SimOptions): string {
  return [
    `raft simulation FAILED for seed ${r.seed} (${opts.nodes} nodes, mix=${opts.mix.name}${opts.asyncLeaderPersist ? ", async leader persist" : ""}): ${r.error}`,
    `replay: npm run soak:sim -- --seed ${r.seed}${opts.plantedBugs ? ` --bug ${Object.keys(opts.plantedBugs).join(',')}` : ''}`,
    `last ${r.trace?.length ?? 0} events:`,
    ...(r.trace ?? []),
  ].join('\n');
}
