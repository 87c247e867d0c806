import { EmbeddedClient } from '@nestcd/client/embedded';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvClientContract } from './contract';

kvClientContract('embedded', async () => {
  const main = await EmbeddedClient.open();
  let first = true;
  return {
    historicReads: true,
    // the first client is the one that owns the member; the others share it
    client: async () => {
      if (first) {
        first = false;
        return main;
      }
      return main.share();
    },
    stop: async () => main.close(),
  };
}, { cuttable: false });

describe('EmbeddedClient on a data dir', () => {
  it('keeps the keyspace and leases across a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nestcd-embedded-'));
    try {
      const c1 = await EmbeddedClient.open({ dataDir: dir });
      const lease = await c1.leaseGrant(60);
      const put = await c1.put({ key: Buffer.from('k'), value: Buffer.from('v'), lease: lease.id });
      await c1.close();
      const c2 = await EmbeddedClient.open({ dataDir: dir });
      const got = await c2.range({ key: Buffer.from('k') });
      expect(got.kvs.map((kv) => [kv.value.toString(), kv.modRevision, kv.lease])).toEqual([['v', put.header.revision, lease.id]]);
      expect(await c2.leaseLeases()).toEqual([lease.id]);
      await c2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a closed client refuses calls with CANCELLED and ends its watches', async () => {
    const c = await EmbeddedClient.open();
    const errors: Error[] = [];
    c.watch({ key: Buffer.from('x') }, { onEvents: () => undefined, onError: (e) => errors.push(e) });
    await c.close();
    expect(errors).toHaveLength(1);
    await expect(c.range({ key: Buffer.from('x') })).rejects.toMatchObject({ code: 1 });
  });
});
