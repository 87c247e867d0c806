/**
 * Throughput of the peer transport (measured, not asserted). Skipped unless TRANSPORT_BENCH=1:
 *
 *   TRANSPORT_BENCH=1 npx jest libs/transport/src/throughput --runInBand
 *   (TRANSPORT_BENCH_WINDOW=64 for a latency-bound run, TRANSPORT_BENCH_MS=10000 for a longer one)
 *
 * Two transports in this process on loopback; one sends MsgApp messages, each carrying one entry with a 256-byte
 * payload, to the other, keeping at most WINDOW unacknowledged (sent but not yet received) so the bounded queue
 * never drops. Sender and receiver share one CPU thread, so this is a lower bound for two processes.
 */
import { EntryType, Message, MessageType, emptyMessage } from '@nestcd/raft';
import { encodedMessageSize } from './codec';
import { PeerTransport } from './peer-transport';

const run = process.env.TRANSPORT_BENCH === '1' ? describe : describe.skip;
const DURATION_MS = Number(process.env.TRANSPORT_BENCH_MS ?? 3000);
const WINDOW = Number(process.env.TRANSPORT_BENCH_WINDOW ?? 2048);
const PER_SEND = Math.min(64, WINDOW);

run('transport throughput', () => {
  it('MsgApp with a 256-byte entry, A -> B', async () => {
    let received = 0;
    const b = new PeerTransport({ memberId: 2n, clusterId: 1n, listenUrls: ['http://127.0.0.1:0'], onMessage: () => { received++; } });
    const a = new PeerTransport({ memberId: 1n, clusterId: 1n, listenUrls: ['http://127.0.0.1:0'], onMessage: () => {}, maxBatchBytes: Number(process.env.TRANSPORT_BENCH_BATCH ?? 1048576) });
    try {
      const [port] = await b.start();
      await a.start();
      a.addPeer(2n, [`http://127.0.0.1:${port}`]);
      const payload = new Uint8Array(256).fill(7);
      const msg = (i: number): Message => ({
        ...emptyMessage(MessageType.MsgApp, 2n), from: 1n, term: 5, logTerm: 5, index: i, commit: i,
        entries: [{ type: EntryType.Normal, term: 5, index: i + 1, data: payload }],
      });
      while (!a.peerStats(2n)?.connected) await new Promise((r) => setTimeout(r, 5));
      let sent = 0;
      const t0 = performance.now();
      const end = t0 + DURATION_MS;
      while (performance.now() < end) {
        if (sent - received < WINDOW) {
          const batch: Message[] = [];
          for (let i = 0; i < PER_SEND; i++) batch.push(msg(sent++));
          a.send(batch);
        } else {
          await new Promise((r) => setImmediate(r));
        }
      }
      while (received < sent && performance.now() < end + 5000) await new Promise((r) => setImmediate(r));
      const secs = (performance.now() - t0) / 1000;
      const st = a.peerStats(2n)!;
      const wireBytes = encodedMessageSize(msg(0)) + 4;
      // eslint-disable-next-line no-console
      console.log(
        `transport throughput: ${received} MsgApp (256-byte entry, ${wireBytes} bytes on the wire each) in ${secs.toFixed(2)} s = ` +
        `${Math.round(received / secs)} msg/s, ${(st.bytesSent / secs / 1e6).toFixed(1)} MB/s; ` +
        `window ${WINDOW}, ${st.batches} frames (${(st.sent / st.batches).toFixed(1)} msgs/frame), dropped ${st.dropped}`,
      );
      expect(received).toBe(sent);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
