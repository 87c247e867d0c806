/**
 * etcdctl lease grant / timetolive / keep-alive / revoke / list, put --lease,
 * unknown leases and key expiry, side by side against etcd 3.4.23 and nestcd.
 */
import { sleep, useCompatServers } from '../support/compat';

const HEX = '[0-9a-f]{16}';

describe('compat: lease', () => {
  const cmp = useCompatServers();

  it('grant prints the hex lease ID and TTL; -w json has decimal ID and empty Error', async () => {
    const r = await cmp.run(['lease', 'grant', '100']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^lease ${HEX} granted with TTL\\(100s\\)\\n$`));
    const j = await cmp.run(['lease', 'grant', '50', '-w', 'json']);
    expect(j.stdout).toMatch(/^\{"cluster_id":\d+,"member_id":\d+,"revision":1,"raft_term":2,"ID":\d+,"TTL":50,"Error":""\}\n$/);
  });

  it('TTL below the minimum is raised to etcd\'s minimum TTL (2s with default election timeout)', async () => {
    const obs = await cmp.scenario(async ({ ctl }) => {
      const one = await ctl.run(['lease', 'grant', '1']);
      const zero = await ctl.run(['lease', 'grant', '0']);
      // revoke right away so `lease list` below does not depend on expiry timing
      for (const r of [one, zero]) await ctl.ok(['lease', 'revoke', r.stdout.split(' ')[1]]);
      return { one, zero };
    });
    expect(obs.one.stdout).toMatch(/granted with TTL\(2s\)\n$/);
    expect(obs.zero.stdout).toMatch(/granted with TTL\(2s\)\n$/);
  });

  it('put --lease, timetolive (--keys, -w json), keep-alive --once, revoke', async () => {
    const obs = await cmp.scenario(async ({ ctl }) => {
      const id = await ctl.grantLease(100);
      const put1 = await ctl.run(['put', 'l/a', '1', `--lease=${id}`]);
      const put2 = await ctl.run(['put', 'l/b', '2', `--lease=${id}`]);
      const getJson = await ctl.run(['get', 'l/a', '-w', 'json']);
      const ttl = await ctl.run(['lease', 'timetolive', id]);
      const ttlKeys = await ctl.run(['lease', 'timetolive', id, '--keys']);
      const ttlJson = await ctl.run(['lease', 'timetolive', id, '--keys', '-w', 'json']);
      const ka = await ctl.run(['lease', 'keep-alive', '--once', id]);
      const kaJson = await ctl.run(['lease', 'keep-alive', '--once', id, '-w', 'json']);
      const revoke = await ctl.run(['lease', 'revoke', id]);
      const afterRevoke = await ctl.run(['get', 'l/', '--prefix']);
      const revokeAgain = await ctl.run(['lease', 'revoke', id]);
      const ttlAfter = await ctl.run(['lease', 'timetolive', id, '--keys']);
      const kaAfter = await ctl.run(['lease', 'keep-alive', '--once', id]);
      // etcd returns a lease's attached keys in random order (Go map iteration): sort them.
      ttlKeys.stdout = ttlKeys.stdout.replace(/attached keys\(\[([^\]]*)\]\)/, (_, ks: string) => `attached keys([${ks.split(' ').sort().join(' ')}])`);
      ttlJson.stdout = ttlJson.stdout.replace(/"keys":\[([^\]]*)\]/, (_, ks: string) => `"keys":[${ks.split(',').sort().join(',')}]`);
      return { id, put1, put2, getJson, ttl, ttlKeys, ttlJson, ka, kaJson, revoke, afterRevoke, revokeAgain, ttlAfter, kaAfter };
    });
    const id = obs.id;
    const dec = BigInt(`0x${id}`).toString();
    expect(obs.put1.stdout).toBe('OK\n');
    expect(obs.getJson.stdout).toContain(`"version":1,"value":"MQ==","lease":${dec}}`);
    expect(obs.ttl.stdout).toMatch(new RegExp(`^lease ${id} granted with TTL\\(100s\\), remaining\\((9[0-9]|100)s\\)\\n$`));
    expect(obs.ttlKeys.stdout).toMatch(
      new RegExp(`^lease ${id} granted with TTL\\(100s\\), remaining\\((9[0-9]|100)s\\), attached keys\\(\\[l/a l/b\\]\\)\\n$`),
    );
    expect(obs.ttlJson.stdout).toMatch(
      new RegExp(`^\\{"cluster_id":\\d+,"member_id":\\d+,"revision":\\d+,"raft_term":2,"id":${dec},"ttl":(9[0-9]|100),"granted-ttl":100,"keys":\\["bC9h","bC9i"\\]\\}\\n$`),
    );
    expect(obs.ka.stdout).toBe(`lease ${id} keepalived with TTL(100)\n`);
    expect(obs.kaJson.stdout).toMatch(new RegExp(`"ID":${dec},"TTL":100\\}\\n$`));
    expect(obs.revoke).toMatchObject({ code: 0, stdout: `lease ${id} revoked\n` });
    expect(obs.afterRevoke).toMatchObject({ code: 0, stdout: '' });
    expect(obs.revokeAgain.code).toBe(1);
    expect(obs.revokeAgain.stderr).toMatch(
      /"error":"rpc error: code = NotFound desc = etcdserver: requested lease not found"\}\nError: failed to revoke lease \(etcdserver: requested lease not found\)\n$/,
    );
    // timetolive of a gone lease is NOT an error.
    expect(obs.ttlAfter).toMatchObject({ code: 0, stdout: `lease ${id} already expired\n`, stderr: '' });
    // keep-alive --once of a gone lease: exit 2 (ExitBadConnection), no clientv3 retry log line.
    expect(obs.kaAfter).toMatchObject({ code: 2, stdout: '', stderr: 'Error: etcdserver: requested lease not found\n' });
  });

  it('lease list', async () => {
    const r = await cmp.run(['lease', 'list']);
    // still alive: the 100 s and 50 s leases of the first test (the others were revoked)
    expect(r.stdout).toMatch(/^found 2 leases\n[0-9a-f]{16}\n[0-9a-f]{16}\n$/);
  });

  it('unknown lease IDs', async () => {
    const put = await cmp.run(['put', 'l/x', 'v', '--lease=1234']);
    expect(put.code).toBe(1);
    expect(put.stdout).toBe('');
    expect(put.stderr).toMatch(
      /^\{"level":"warn","ts":"[^"]+","caller":"clientv3\/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"endpoint:\/\/client-[0-9a-f-]+\/127\.0\.0\.1:\d+","attempt":0,"error":"rpc error: code = NotFound desc = etcdserver: requested lease not found"\}\nError: etcdserver: requested lease not found\n$/,
    );
    const revoke = await cmp.run(['lease', 'revoke', '1234']);
    expect(revoke.code).toBe(1);
    expect(revoke.stderr).toMatch(/\nError: failed to revoke lease \(etcdserver: requested lease not found\)\n$/);
    const ttl = await cmp.run(['lease', 'timetolive', '1234']);
    expect(ttl).toMatchObject({ code: 0, stdout: 'lease 0000000000001234 already expired\n', stderr: '' });
    const ka = await cmp.run(['lease', 'keep-alive', '--once', '1234']);
    expect(ka).toMatchObject({ code: 2, stderr: 'Error: etcdserver: requested lease not found\n' });
  });

  it('malformed lease IDs are rejected client-side (exit 128)', async () => {
    expect(await cmp.run(['lease', 'revoke', 'zzz'])).toMatchObject({
      code: 128,
      stderr: 'Error: bad lease ID arg (strconv.ParseInt: parsing "zzz": invalid syntax), expecting ID in Hex\n',
    });
    expect(await cmp.run(['put', 'k', 'v', '--lease=zzz'])).toMatchObject({
      code: 128,
      stderr: 'Error: bad lease ID (strconv.ParseInt: parsing "zzz": invalid syntax), expecting ID in Hex\n',
    });
  });

  it('lease keep-alive (streaming) prints a line per keepalive response', async () => {
    const obs = await cmp.scenario(async ({ ctl }) => {
      const id = await ctl.grantLease(30);
      const ka = ctl.spawn(['lease', 'keep-alive', id]);
      await ka.waitFor(/keepalived with TTL\(30\)\n/);
      const res = await ka.stop('SIGINT');
      return { id, first: res.stdout.split('\n')[0] };
    });
    expect(obs.first).toBe(`lease ${obs.id} keepalived with TTL(30)`);
  });

  it('a key attached to a short lease disappears when the lease expires', async () => {
    const obs = await cmp.scenario(async ({ ctl }) => {
      const id = await ctl.grantLease(2);
      const t0 = Date.now();
      await ctl.ok(['put', 'exp/k', 'v', `--lease=${id}`]);
      const before = await ctl.run(['get', 'exp/k', '--print-value-only']);
      let goneAfterMs = -1;
      while (Date.now() - t0 < 10000) {
        const r = await ctl.run(['get', 'exp/k', '--print-value-only']);
        if (r.stdout === '') {
          goneAfterMs = Date.now() - t0;
          break;
        }
        await sleep(200);
      }
      const ttl = await ctl.run(['lease', 'timetolive', id]);
      return {
        id,
        before: before.stdout,
        // the lessor checks expiry every 500 ms and revokes via consensus: allow 1.5 s .. 6 s
        expiredInTime: goneAfterMs >= 1500 && goneAfterMs <= 6000,
        goneAfterMs: goneAfterMs >= 0 ? 'gone' : 'still there',
        ttl: ttl.stdout,
      };
    });
    expect(obs.before).toBe('v\n');
    expect(obs.goneAfterMs).toBe('gone');
    expect(obs.expiredInTime).toBe(true);
    expect(obs.ttl).toBe(`lease ${obs.id} already expired\n`);
  }, 30000);
});
