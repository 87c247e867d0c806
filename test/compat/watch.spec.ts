/**
 * `etcdctl watch` side by side: live events, --rev history, --prefix, --prev-kv,
 * -w json, and watching from a compacted revision.
 */
import { sleep, useCompatServers } from '../support/compat';

/** Time for a freshly spawned etcdctl watch to register its watcher before we write. */
const WATCH_SETTLE_MS = 1000;

describe('compat: watch', () => {
  const cmp = useCompatServers();

  it('live watch: key, --prefix --prev-kv and -w json all see put/put/del', async () => {
    const obs = await cmp.scenario(async ({ ctl }) => {
      const plain = ctl.spawn(['watch', 'w/k']);
      const prefix = ctl.spawn(['watch', 'w/', '--prefix', '--prev-kv']);
      const json = ctl.spawn(['watch', 'w/k', '-w', 'json']);
      await sleep(WATCH_SETTLE_MS);
      await ctl.ok(['put', 'w/k', 'a']); // rev 2
      await ctl.ok(['put', 'w/k', 'b']); // rev 3
      await ctl.ok(['del', 'w/k']); // rev 4
      await ctl.ok(['put', 'w/z', 'q']); // rev 5
      await plain.waitFor(/DELETE\nw\/k\n\n$/);
      await prefix.waitFor(/w\/z\nq\n$/);
      await json.waitFor((s) => s.split('\n').filter(Boolean).length >= 3);
      return { plain: await plain.stop(), prefix: await prefix.stop(), json: await json.stop() };
    });
    expect(obs.plain.stdout).toBe('PUT\nw/k\na\nPUT\nw/k\nb\nDELETE\nw/k\n\n');
    expect(obs.plain.signal).toBe('SIGTERM'); // etcdctl watch does not trap SIGTERM
    // --prev-kv: the previous key/value is printed BEFORE the event's key/value.
    expect(obs.prefix.stdout).toBe('PUT\nw/k\na\nPUT\nw/k\na\nw/k\nb\nDELETE\nw/k\nb\nw/k\n\nPUT\nw/z\nq\n');
    const events = obs.json.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => e.Header.revision)).toEqual([2, 3, 4]);
    expect(events[0]).toMatchObject({
      Events: [{ kv: { key: 'dy9r', create_revision: 2, mod_revision: 2, version: 1, value: 'YQ==' } }],
      CompactRevision: 0,
      Canceled: false,
      Created: false,
    });
    // DELETE: "type":1 and a kv with only key and mod_revision.
    expect(events[2].Events).toEqual([{ type: 1, kv: { key: 'dy9r', mod_revision: 4 } }]);
  });

  it('watch --rev replays history (and keeps watching)', async () => {
    const obs = await cmp.scenario(async ({ ctl }) => {
      const w = ctl.spawn(['watch', 'w/', '--prefix', '--rev=3']);
      await w.waitFor(/w\/z\nq\n$/);
      return w.stop();
    });
    expect(obs.stdout).toBe('PUT\nw/k\nb\nDELETE\nw/k\n\nPUT\nw/z\nq\n');
  });

  it('watch --rev=1 --prev-kv on a key range [w/a, w/l)', async () => {
    const obs = await cmp.scenario(async ({ ctl }) => {
      const w = ctl.spawn(['watch', 'w/a', 'w/l', '--rev=1', '--prev-kv']);
      await w.waitFor(/DELETE/);
      await sleep(200); // nothing else should arrive (w/z is out of range)
      return w.stop();
    });
    expect(obs.stdout).toBe('PUT\nw/k\na\nPUT\nw/k\na\nw/k\nb\nDELETE\nw/k\nb\nw/k\n\n');
  });

  it('watch from a compacted revision: canceled by the server, exit 5', async () => {
    const compact = await cmp.run(['compaction', '4']);
    expect(compact.stdout).toBe('compacted revision 4\n');
    const simple = await cmp.run(['watch', 'w/k', '--rev=2'], { timeoutMs: 10000 });
    expect(simple).toMatchObject({
      code: 5,
      stdout: '',
      stderr: 'watch was canceled (etcdserver: mvcc: required revision has been compacted)\nError: watch is canceled by the server\n',
      timedOut: false,
    });
    const json = await cmp.run(['watch', 'w/k', '--rev=2', '-w', 'json'], { timeoutMs: 10000 });
    expect(json.code).toBe(5);
    // Note: the canceled response's header has no revision (0), and CompactRevision is the compacted revision.
    expect(json.stdout).toMatch(
      /^\{"Header":\{"cluster_id":\d+,"member_id":\d+,"raft_term":2\},"Events":\[\],"CompactRevision":4,"Canceled":true,"Created":false\}\n$/,
    );
    // Watching from exactly the compact revision is still allowed, but the compaction
    // dropped the tombstone at revision 4 (DELETE w/k), so only the later put is replayed.
    const ok = await cmp.scenario(async ({ ctl }) => {
      const w = ctl.spawn(['watch', 'w/', '--prefix', '--rev=4']);
      await w.waitFor(/w\/z\nq\n$/);
      return w.stop();
    });
    expect(ok.stdout).toBe('PUT\nw/z\nq\n');
  });
});
