import { Etcd3, IKeyValue } from 'etcd3';
import { InProcessMember, startInProcess } from './in-process';

// The real third-party `etcd3` npm client against nestcd: if it cannot tell nestcd from etcd, neither can apps.

const waitFor = async (cond: () => boolean, ms = 5000) => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('the etcd3 npm client against nestcd', () => {
  let member: InProcessMember;
  let client: Etcd3;

  beforeAll(async () => {
    member = await startInProcess();
    client = new Etcd3({ hosts: `http://${member.endpoint}` });
  });

  afterAll(async () => {
    client?.close();
    await member?.close();
  });

  it('puts, gets and deletes keys, single and by prefix', async () => {
    await client.put('fruit/apple').value('red');
    await client.put('fruit/banana').value('yellow');
    await client.put('vegetable/carrot').value('orange');
    expect(await client.get('fruit/apple').string()).toBe('red');
    expect(await client.get('fruit/none').string()).toBeNull();
    expect(await client.getAll().prefix('fruit/').strings()).toEqual({ 'fruit/apple': 'red', 'fruit/banana': 'yellow' });
    expect(await client.getAll().prefix('fruit/').count()).toBe(2);
    const del = await client.delete().prefix('fruit/');
    expect(Number(del.deleted)).toBe(2);
    expect(await client.getAll().prefix('fruit/').keys()).toEqual([]);
    expect(await client.get('vegetable/carrot').string()).toBe('orange');
  });

  it('runs compare-and-swap transactions', async () => {
    await client.put('cas').value('1');
    const won = await client.if('cas', 'Value', '==', '1').then(client.put('cas').value('2')).else(client.get('cas')).commit();
    expect(won.succeeded).toBe(true);
    const lost = await client.if('cas', 'Value', '==', '1').then(client.put('cas').value('3')).else(client.get('cas')).commit();
    expect(lost.succeeded).toBe(false);
    expect(lost.responses[0].response_range.kvs[0].value.toString()).toBe('2');
  });

  it('watches a prefix: every put and delete, in order, with values', async () => {
    const events: string[] = [];
    const watcher = await client.watch().prefix('w/').create();
    watcher.on('put', (kv: IKeyValue) => events.push(`put ${kv.key.toString()}=${kv.value.toString()}`));
    watcher.on('delete', (kv: IKeyValue) => events.push(`delete ${kv.key.toString()}`));
    await client.put('w/a').value('1');
    await client.put('other').value('x');
    await client.put('w/b').value('2');
    await client.delete().key('w/a');
    await waitFor(() => events.length >= 3);
    expect(events).toEqual(['put w/a=1', 'put w/b=2', 'delete w/a']);
    await watcher.cancel();
  });

  it('keeps a lease alive past its TTL, and its keys go when it is revoked', async () => {
    const lease = client.lease(2);
    await lease.put('leased').value('here');
    const id = await lease.grant();
    expect(id).toMatch(/^[0-9a-f]+$/);
    await new Promise((r) => setTimeout(r, 3500));
    expect(await client.get('leased').string()).toBe('here');
    await lease.revoke();
    expect(await client.get('leased').string()).toBeNull();
  });

  it('expires a lease nobody keeps alive, with its keys', async () => {
    const grant = await member.server.leaseGrant(2, 0n);
    await client.put('short-lived').value('x').lease(grant.id.toString());
    expect(await client.get('short-lived').string()).toBe('x');
    const until = Date.now() + 6000;
    while ((await client.get('short-lived').string()) !== null && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    expect(await client.get('short-lived').string()).toBeNull();
  });

  it('grants its Lock to one holder at a time', async () => {
    const first = await client.lock('the-lock').ttl(5).acquire();
    // etcd3's Lock is a compare-and-swap on the key's create revision: a second holder is refused, not queued.
    await expect(client.lock('the-lock').ttl(5).acquire()).rejects.toThrow('Failed to acquire a lock on the-lock');
    await first.release();
    const second = await client.lock('the-lock').ttl(5).acquire();
    await second.release();
  });

  it('elects one leader, lets observers see it, and hands over on resign', async () => {
    const election = client.election('the-election', 5);
    const a = await election.campaign('candidate-a').wait();
    expect(await election.leader()).toBe('candidate-a');
    const observer = await election.observe();
    const seen: (string | undefined)[] = [];
    observer.on('change', (v) => seen.push(v));
    const b = election.campaign('candidate-b');
    let bElected = false;
    b.on('elected', () => (bElected = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(bElected).toBe(false);
    await a.resign();
    await waitFor(() => bElected);
    expect(await election.leader()).toBe('candidate-b');
    await waitFor(() => seen.includes('candidate-b'));
    await observer.cancel();
    await b.resign();
  });
});
