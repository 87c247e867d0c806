// The v2 keyspace on a 3-member nestcd cluster: replicated writes, watches on followers, leader-decided expiry,
// and the classic etcdctl cluster commands.
import { etcdctl } from '../support';
import { Cluster, eventually, startCluster } from '../cluster/cluster-support';
import { httpRequest, streamLines } from './http-support';

jest.setTimeout(120_000);

describe('v2 API on a 3-member nestcd cluster', () => {
  let cluster: Cluster;
  const saved = process.env.ETCD_ENABLE_V2;
  beforeAll(async () => {
    // startCluster passes the environment through to the members; --enable-v2 as its ETCD_* variable
    process.env.ETCD_ENABLE_V2 = 'true';
    cluster = await startCluster(3, 'nestcd-v2-cluster');
  }, 90_000);
  afterAll(async () => {
    if (saved === undefined) delete process.env.ETCD_ENABLE_V2;
    else process.env.ETCD_ENABLE_V2 = saved;
    await cluster?.stop();
  });

  it('a write on one member is read (quorum) on the others and wakes a watcher on a follower', async () => {
    const [a, b, c] = cluster.endpoints;
    const watching = streamLines(b, '/v2/keys/shared?wait=true', '', 1);
    await new Promise((r) => setTimeout(r, 300));
    const put = await httpRequest(a, 'PUT', '/v2/keys/shared', new URLSearchParams({ value: 'v1' }));
    expect(put.status).toBe(201);
    const index = JSON.parse(put.body).node.modifiedIndex;
    const read = await httpRequest(c, 'GET', '/v2/keys/shared?quorum=true');
    expect(JSON.parse(read.body).node).toEqual({ key: '/shared', value: 'v1', modifiedIndex: index, createdIndex: index });
    const seen = await watching;
    expect(JSON.parse(seen.lines[0])).toMatchObject({ action: 'set', node: { key: '/shared', value: 'v1' } });
  });

  it('a TTL key expires on every member at the same index', async () => {
    const [a] = cluster.endpoints;
    const put = await httpRequest(a, 'PUT', '/v2/keys/fleeting', new URLSearchParams({ value: 'x', ttl: '1' }));
    // from the index after the write: the history serves the expiry even if it came before the watch
    const after = JSON.parse(put.body).node.modifiedIndex + 1;
    const watchers = cluster.endpoints.map((e) => streamLines(e, `/v2/keys/fleeting?wait=true&waitIndex=${after}`, '', 1));
    const events = (await Promise.all(watchers)).map((w) => JSON.parse(w.lines[0]));
    for (const e of events) expect(e).toMatchObject({ action: 'expire', node: { key: '/fleeting' } });
    expect(new Set(events.map((e) => e.node.modifiedIndex)).size).toBe(1);
    for (const e of cluster.endpoints) {
      await eventually(async () => expect((await httpRequest(e, 'GET', '/v2/keys/fleeting')).status).toBe(404));
    }
  });

  it('ETCDCTL_API=2 member list and cluster-health see three members', async () => {
    const env = { env: { ETCDCTL_API: '2' } };
    const list = await etcdctl(cluster.endpoints, ['member', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split('\n')).toHaveLength(3);
    expect(list.stdout.match(/isLeader=true/g)).toHaveLength(1);
    const health = await etcdctl(cluster.endpoints, ['cluster-health'], env);
    expect(health.code).toBe(0);
    expect(health.stdout).toMatch(/^(member [0-9a-f]+ is healthy: got healthy result from http:\/\/127\.0\.0\.1:\d+\n){3}cluster is healthy\n$/);
  });
});
