import { Message, NodeId } from './types';

/** One heartbeat round confirming leadership for a batch of read requests that share a commit index. */
export interface ReadRound {
  key: string;
  ctx: Uint8Array;
  /** The leader's commit index when the first request of the round arrived. */
  index: number;
  requests: Message[];
  acks: Set<NodeId>;
}

export function ctxKey(ctx: Uint8Array): string {
  // Contexts are short (request ids); a latin1 string is a cheap exact map key.
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]);
  return s;
}

/**
 * Pending ReadIndex requests on the leader (Safe mode). Requests arriving before the round's heartbeats have
 * been handed to the application (ready()) join that round, so a burst of reads costs one heartbeat round.
 * A quorum of acks for a round also releases every earlier round.
 */
export class ReadOnly {
  private rounds = new Map<string, ReadRound>();
  private queue: ReadRound[] = [];
  private open: ReadRound | undefined;

  /** Returns the round the request joined and whether heartbeats must be broadcast for it. */
  addRequest(index: number, m: Message): { round: ReadRound; isNew: boolean } | undefined {
    const ctx = m.entries[0].data;
    const key = ctxKey(ctx);
    if (this.open && this.open.index === index) {
      this.open.requests.push(m);
      return { round: this.open, isNew: false };
    }
    if (this.rounds.has(key)) return undefined; // duplicate context: already pending
    const round: ReadRound = { key, ctx, index, requests: [m], acks: new Set() };
    this.rounds.set(key, round);
    this.queue.push(round);
    this.open = round;
    return { round, isNew: true };
  }

  /** The heartbeats sent so far left the node: later requests need a new round. */
  seal(): void {
    this.open = undefined;
  }

  recvAck(id: NodeId, ctx: Uint8Array): Set<NodeId> | undefined {
    const round = this.rounds.get(ctxKey(ctx));
    if (!round) return undefined;
    round.acks.add(id);
    return round.acks;
  }

  /** Release the round with this context and every round queued before it. */
  advance(ctx: Uint8Array): ReadRound[] {
    const key = ctxKey(ctx);
    const i = this.queue.findIndex((r) => r.key === key);
    if (i < 0) return [];
    const released = this.queue.splice(0, i + 1);
    for (const r of released) {
      this.rounds.delete(r.key);
      if (this.open === r) this.open = undefined;
    }
    return released;
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    return this.queue.length ? this.queue[this.queue.length - 1].ctx : undefined;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
