// Locks built from the v2 API alone, as the classic etcd articles describe them, with several contenders.
// Each runs against the real etcd too, which shows the recipe (and so the test) is sound.
import { ServerHandle, startServer } from '../support';

jest.setTimeout(90_000);

const form = (fields: Record<string, string>) => new URLSearchParams(fields);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function v2(endpoint: string, method: string, path: string, body?: URLSearchParams) {
  const res = await fetch(`${endpoint}/v2/keys${path}`, { method, body, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, index: Number(res.headers.get('x-etcd-index')), body: (await res.json()) as any };
}

/** Exclusive lock: create with prevExist=false and a TTL; on 412 wait for the key to change, then retry. */
async function withExclusiveLock(endpoint: string, me: string, critical: () => Promise<void>, release = true): Promise<void> {
  for (;;) {
    const r = await v2(endpoint, 'PUT', '/locks/exclusive', form({ value: me, prevExist: 'false', ttl: '3' }));
    if (r.status === 201) break;
    expect(r.status).toBe(412);
    const current = await v2(endpoint, 'GET', '/locks/exclusive');
    if (current.status === 404) continue;
    // wait for the next change to the lock key (delete or expire) after what we saw
    await v2(endpoint, 'GET', `/locks/exclusive?wait=true&waitIndex=${current.body.node.modifiedIndex + 1}`);
  }
  await critical();
  if (release) {
    const released = await v2(endpoint, 'DELETE', `/locks/exclusive?prevValue=${me}`);
    expect(released.status).toBe(200);
  }
}

/** Ordered lock: POST an in-order key; the holder is the lowest; everyone else waits for the key just before theirs. */
async function withOrderedLock(endpoint: string, me: string, onQueued: (key: string) => void, critical: () => Promise<void>): Promise<void> {
  const queued = await v2(endpoint, 'POST', '/locks/queue', form({ value: me, ttl: '30' }));
  expect(queued.status).toBe(201);
  const mine = queued.body.node.key as string;
  onQueued(mine);
  for (;;) {
    const list = await v2(endpoint, 'GET', '/locks/queue?sorted=true');
    const keys = (list.body.node.nodes ?? []).map((n: { key: string }) => n.key) as string[];
    const pos = keys.indexOf(mine);
    expect(pos).toBeGreaterThanOrEqual(0);
    if (pos === 0) break;
    const before = await v2(endpoint, 'GET', keys[pos - 1]);
    if (before.status === 404) continue;
    await v2(endpoint, 'GET', `${keys[pos - 1]}?wait=true&waitIndex=${before.body.node.modifiedIndex + 1}`);
  }
  await critical();
  expect((await v2(endpoint, 'DELETE', mine)).status).toBe(200);
}

describe.each(['nestcd', 'etcd'] as const)('v2 locks on %s', (kind) => {
  let server: ServerHandle;
  beforeAll(async () => {
    server = await startServer(kind, { extraArgs: ['--enable-v2'] });
  }, 60_000);
  afterAll(() => server?.stop());

  it('exclusive lock (prevExist=false + TTL): mutual exclusion among 6 contenders', async () => {
    let holders = 0;
    let maxHolders = 0;
    const served: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        withExclusiveLock(server.endpoint, `c${i}`, async () => {
          holders++;
          maxHolders = Math.max(maxHolders, holders);
          served.push(`c${i}`);
          await sleep(30);
          holders--;
        }),
      ),
    );
    expect(maxHolders).toBe(1);
    expect(served.sort()).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
  });

  it('a holder that dies without releasing loses the lock when its TTL expires', async () => {
    await withExclusiveLock(server.endpoint, 'dead', async () => undefined, false);
    const started = Date.now();
    let got = false;
    await withExclusiveLock(server.endpoint, 'next', async () => {
      got = true;
    });
    expect(got).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it('ordered lock (in-order keys): 5 waiters are served in the order they queued, one at a time', async () => {
    const queuedKeys: string[] = [];
    const servedKeys: string[] = [];
    let holders = 0;
    let maxHolders = 0;
    await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        let myKey = '';
        await sleep(i * 20);
        await withOrderedLock(server.endpoint, `w${i}`, (k) => {
          myKey = k;
          queuedKeys.push(k);
        }, async () => {
          holders++;
          maxHolders = Math.max(maxHolders, holders);
          servedKeys.push(myKey);
          await sleep(20);
          holders--;
        });
      }),
    );
    expect(maxHolders).toBe(1);
    expect(servedKeys).toEqual([...queuedKeys].sort());
  });
});
