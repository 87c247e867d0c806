/**
 * Runtime membership on a one-member cluster, side by side with etcd 3.4: member add (a learner, so the
 * one-member quorum is untouched), the "unstarted" row, and etcd's refusals for remove/update/promote/add.
 * Member and cluster IDs, ports and timestamps are masked (normalize.ts).
 */
import { freePort, useCompatServers } from '../support';

jest.setTimeout(60000);

/** etcdctl prints member and cluster IDs with %16x: an ID with a leading zero hex digit is padded with a space. */
const maskIds = <T extends { stdout: string }>(r: T): T => ({ ...r, stdout: r.stdout.replace(/(Member|cluster) +[0-9a-f]{1,16}\b/g, '$1 <ID>').replace(/\b[0-9a-f]{12,16}\b/g, '<ID>') });

/**
 * Both servers list members in ID order, and the IDs differ between them (they hash peer URLs and the time), so
 * after masking the IDs the members are compared as sets: ETCD_INITIAL_CLUSTER's entries and the list's rows sorted.
 */
const sortMembers = <T extends { stdout: string }>(r: T): T => ({
  ...r,
  stdout: r.stdout
    .replace(/ETCD_INITIAL_CLUSTER="([^"]*)"/, (_m, list: string) => `ETCD_INITIAL_CLUSTER="${list.split(',').sort().join(',')}"`)
    .replace(/(?:^<ID>, [^\n]*\n)+/m, (rows) => rows.split('\n').filter(Boolean).sort().join('\n') + '\n')
    // table rows: an ID one hex digit shorter is padded with a space, which must not decide the order
    .replace(/(?:^\|\s+<ID>\s+\|[^\n]*\n)+/m, (rows) => rows.split('\n').filter(Boolean).sort(byText).join('\n') + '\n'),
});
const byText = (a: string, b: string): number => {
  const [x, y] = [a.replace(/\s+/g, ' '), b.replace(/\s+/g, ' ')];
  return x < y ? -1 : x > y ? 1 : 0;
};

describe('compat: member add / remove / update / promote', () => {
  const cmp = useCompatServers();
  const learnerIds = new Map<string, string>();

  it('member add --learner prints the new member and its environment', async () => {
    const port = await freePort();
    const r = await cmp.scenario(async (t) => {
      const out = await t.ctl.run(['member', 'add', 'newbie', `--peer-urls=http://127.0.0.1:${port}`, '--learner']);
      learnerIds.set(t.kind, /Member +([0-9a-f]+) added/.exec(out.stdout)?.[1] ?? '');
      return sortMembers(maskIds(out));
    }, { label: 'member add --learner' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Member <ID> added to cluster <ID>\n\nETCD_NAME="newbie"\n/);
    expect(r.stdout).toContain('ETCD_INITIAL_CLUSTER_STATE="existing"');
  });

  it('member list shows the added learner as unstarted, with no name and no client URLs', async () => {
    const r = await cmp.scenario(async (t) => sortMembers(maskIds(await t.ctl.run(['member', 'list', '-w', 'table']))), { label: 'member list -w table' });
    expect(r.stdout).toMatch(/\| unstarted \|\s+\|\s+http:\/\/127\.0\.0\.1:\d+ \|\s+\|\s+true \|/);
    await cmp.scenario(async (t) => sortMembers(maskIds(await t.ctl.run(['member', 'list']))), { label: 'member list' });
  });

  it('refusals: too many learners, peer URLs taken, unknown members, a learner not in sync', async () => {
    const other = await freePort();
    expect((await cmp.run(['member', 'add', 'second', `--peer-urls=http://127.0.0.1:${other}`, '--learner'])).stderr)
      .toContain('etcdserver: too many learner members in cluster');
    await cmp.scenario((t) => t.ctl.run(['member', 'add', 'dup', `--peer-urls=${t.server.peerUrl}`]), { label: 'add with a taken peer URL' });
    expect((await cmp.run(['member', 'remove', '1234'])).stderr).toContain('etcdserver: member not found');
    expect((await cmp.run(['member', 'update', '1234', `--peer-urls=http://127.0.0.1:${other}`])).stderr).toContain('etcdserver: member not found');
    expect((await cmp.run(['member', 'promote', '1234'])).stderr).toMatch(/etcdserver: member not found/);
    const promote = await cmp.scenario((t) => t.ctl.run(['member', 'promote', learnerIds.get(t.kind)!]), { label: 'promote a learner that never started' });
    expect(promote.stderr).toContain('etcdserver: can only promote a learner member which is in sync with leader');
    const self = await cmp.scenario(async (t) => {
      const id = (await t.ctl.run(['member', 'list'])).stdout.split('\n').find((l) => l.includes(', ref,'))!.split(',')[0];
      return t.ctl.run(['member', 'promote', id]);
    }, { label: 'promote a voter' });
    expect(self.stderr).toContain('etcdserver: can only promote a learner member');
    await cmp.run(['member', 'add', 'bad', '--peer-urls=127.0.0.1:1']);
  });

  it('member update and member remove of the learner', async () => {
    const port = await freePort();
    const upd = await cmp.scenario(async (t) => maskIds(await t.ctl.run(['member', 'update', learnerIds.get(t.kind)!, `--peer-urls=http://127.0.0.1:${port}`])), { label: 'update' });
    expect(upd.stdout).toBe('Member <ID> updated in cluster <ID>\n');
    const rm = await cmp.scenario(async (t) => maskIds(await t.ctl.run(['member', 'remove', learnerIds.get(t.kind)!])), { label: 'remove' });
    expect(rm.stdout).toBe('Member <ID> removed from cluster <ID>\n');
    // A removed ID is gone for good.
    const again = await cmp.scenario((t) => t.ctl.run(['member', 'remove', learnerIds.get(t.kind)!]), { label: 'remove again' });
    expect(again.stderr).toContain('etcdserver: member not found');
    await cmp.run(['member', 'list', '-w', 'table']);
  });

  it('move-leader to an unknown member, and to itself', async () => {
    await cmp.run(['move-leader', '1234']);
    await cmp.scenario(async (t) => {
      const id = (await t.ctl.run(['member', 'list'])).stdout.split('\n').find((l) => l.includes(', ref,'))!.split(',')[0];
      return maskIds(await t.ctl.run(['move-leader', id]));
    }, { label: 'move-leader to itself' });
  });
});
