/**
 * compaction, member list, endpoint status / health, side by side.
 * Masked as legitimately different: member/cluster IDs, ports, server version,
 * db size, raft index / applied index, durations. Raft term, leader/learner
 * flags, names, URLs' shape and errors must match.
 */
import { useCompatServers } from '../support/compat';
import { parseTable } from '../support/normalize';

describe('compat: compaction', () => {
  const cmp = useCompatServers();

  beforeAll(async () => {
    for (const v of ['v1', 'v2', 'v3', 'v4']) await cmp.run(['put', 'c/k', v]); // revisions 2..5
  });

  it('compaction N prints "compacted revision N"', async () => {
    expect(await cmp.run(['compaction', '3'])).toMatchObject({ code: 0, stdout: 'compacted revision 3\n', stderr: '' });
  });

  it('get --rev below the compacted revision fails; at/after it works', async () => {
    const r = await cmp.run(['get', 'c/k', '--rev=2']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /"error":"rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted"\}\nError: etcdserver: mvcc: required revision has been compacted\n$/,
    );
    expect((await cmp.run(['get', 'c/k', '--rev=3'])).stdout).toBe('c/k\nv2\n');
    expect((await cmp.run(['get', 'c/k', '--rev=5'])).stdout).toBe('c/k\nv4\n');
  });

  it('compacting again at or below the compacted revision fails', async () => {
    for (const rev of ['3', '2']) {
      const r = await cmp.run(['compaction', rev]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/\nError: etcdserver: mvcc: required revision has been compacted\n$/);
    }
  });

  it('compacting a future revision fails', async () => {
    const r = await cmp.run(['compaction', '100']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /code = OutOfRange desc = etcdserver: mvcc: required revision is a future revision"\}\nError: etcdserver: mvcc: required revision is a future revision\n$/,
    );
  });

  it('compaction --physical', async () => {
    expect((await cmp.run(['compaction', '--physical', '5'])).stdout).toBe('compacted revision 5\n');
    expect((await cmp.run(['get', 'c/k', '--rev=4'])).code).toBe(1);
    const j = JSON.parse((await cmp.run(['get', 'c/k', '-w', 'json'])).stdout);
    expect(j.kvs[0]).toMatchObject({ create_revision: 2, mod_revision: 5, version: 4 });
  });
});

describe('compat: member list / endpoint', () => {
  const cmp = useCompatServers();

  it('member list (simple)', async () => {
    const r = await cmp.run(['member', 'list']);
    const { server } = cmp.ref;
    // The member ID is printed with %x, not zero-padded: 1..16 hex digits.
    const id = r.stdout.split(',')[0];
    expect(id).toMatch(/^[0-9a-f]{1,16}$/);
    expect(r.stdout).toBe(`${id}, started, ref, ${server.peerUrl}, ${server.endpoint}, false\n`);
  });

  it('member list -w table', async () => {
    const r = await cmp.run(['member', 'list', '-w', 'table']);
    const rows = parseTable(r.stdout);
    expect(rows[0]).toEqual(['ID', 'STATUS', 'NAME', 'PEER ADDRS', 'CLIENT ADDRS', 'IS LEARNER']);
    expect(rows.slice(1).map((row) => row.slice(1))).toEqual([
      ['started', 'ref', cmp.ref.server.peerUrl, cmp.ref.server.endpoint, 'false'],
    ]);
  });

  it('member list -w json (header without revision)', async () => {
    const r = await cmp.run(['member', 'list', '-w', 'json']);
    const { server } = cmp.ref;
    expect(r.stdout).toMatch(
      new RegExp(
        `^\\{"header":\\{"cluster_id":\\d+,"member_id":\\d+,"raft_term":2\\},"members":\\[\\{"ID":\\d+,"name":"ref","peerURLs":\\["${server.peerUrl}"\\],"clientURLs":\\["${server.endpoint}"\\]\\}\\]\\}\\n$`,
      ),
    );
  });

  it('endpoint health (simple, table, json)', async () => {
    const r = await cmp.run(['endpoint', 'health']);
    expect(r.code).toBe(0);
    // etcdctl 3.4 prints the simple health line on STDERR, not stdout.
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      new RegExp(`^${cmp.ref.server.endpoint} is healthy: successfully committed proposal: took = \\S+\\n$`),
    );
    const t = parseTable((await cmp.run(['endpoint', 'health', '-w', 'table'])).stdout);
    expect(t[0]).toEqual(['ENDPOINT', 'HEALTH', 'TOOK', 'ERROR']);
    expect([t[1][0], t[1][1], t[1][3]]).toEqual([cmp.ref.server.endpoint, 'true', '']);
    const j = JSON.parse((await cmp.run(['endpoint', 'health', '-w', 'json'])).stdout);
    expect(j).toEqual([{ endpoint: cmp.ref.server.endpoint, health: true, took: expect.any(String) }]);
  });

  it('endpoint status -w table: leader, not learner, raft term 2', async () => {
    const r = await cmp.run(['endpoint', 'status', '-w', 'table']);
    const rows = parseTable(r.stdout);
    expect(rows[0]).toEqual([
      'ENDPOINT', 'ID', 'VERSION', 'DB SIZE', 'IS LEADER', 'IS LEARNER', 'RAFT TERM', 'RAFT INDEX', 'RAFT APPLIED INDEX', 'ERRORS',
    ]);
    const [ep, id, version, dbSize, leader, learner, term, index, applied, errors] = rows[1];
    expect(ep).toBe(cmp.ref.server.endpoint);
    expect(id).toMatch(/^[0-9a-f]{1,16}$/); // %x, not zero-padded
    expect(version).toBe('3.4.23'); // etcd; nestcd's own version is masked in the comparison
    expect(dbSize).toMatch(/^\d+(\.\d+)? (B|kB|MB)$/);
    expect([leader, learner, term, errors]).toEqual(['true', 'false', '2', '']);
    expect(Number(index)).toBeGreaterThan(0);
    expect(Number(applied)).toBeGreaterThan(0);
  });

  it('endpoint status (simple and json)', async () => {
    const r = await cmp.run(['endpoint', 'status']);
    expect(r.stdout).toMatch(
      new RegExp(`^${cmp.ref.server.endpoint}, [0-9a-f]{1,16}, 3\\.4\\.23, \\d+(\\.\\d+)? (B|kB|MB), true, false, 2, \\d+, \\d+, \\n$`),
    );
    const j = JSON.parse((await cmp.run(['endpoint', 'status', '-w', 'json'])).stdout);
    expect(j).toHaveLength(1);
    expect(j[0].Endpoint).toBe(cmp.ref.server.endpoint);
    expect(j[0].Status).toMatchObject({ version: '3.4.23', raftTerm: 2 });
    expect(j[0].Status.leader).toBe(j[0].Status.header.member_id);
  });
});

describe('compat: alarm, defrag, hashkv, snapshot save', () => {
  const cmp = useCompatServers();

  beforeAll(async () => {
    await cmp.run(['put', 'm/a', '1']);
  });

  it('alarm list prints nothing when no alarm is raised; alarm disarm likewise', async () => {
    expect(await cmp.run(['alarm', 'list'])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await cmp.run(['alarm', 'disarm'])).toMatchObject({ code: 0, stdout: '' });
  });

  it('defrag reports success for the endpoint', async () => {
    const r = await cmp.run(['defrag']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Finished defragmenting etcd member\[http:\/\/127\.0\.0\.1:\d+\]\n$/);
  });

  it('endpoint hashkv answers with a hash for the endpoint (the hash itself is implementation-specific)', async () => {
    const obs = await cmp.scenario(async (t) => {
      const r = await t.ctl.run(['endpoint', 'hashkv']);
      return { code: r.code, stdout: r.stdout.replace(/:\d+, \d+\n$/, ':<PORT>, <HASH>\n') };
    });
    expect(obs).toEqual({ code: 0, stdout: 'http://127.0.0.1:<PORT>, <HASH>\n' });
  });

  it('snapshot save downloads a snapshot etcdctl accepts', async () => {
    const obs = await cmp.scenario(async (t) => {
      const file = `${t.server.dataDir}/snapshot.db`;
      const r = await t.ctl.run(['snapshot', 'save', file]);
      return { code: r.code, stdout: r.stdout.replace(file, '<FILE>') };
    });
    expect(obs).toEqual({ code: 0, stdout: 'Snapshot saved at <FILE>\n' });
  });
});
