/**
 * etcdctl lock / elect (clientv3 concurrency recipes: session lease + revision
 * ordered keys + watch on the predecessor), side by side.
 * Lock/election keys are `<name>/<lease ID in hex, unpadded>`; the lease part is
 * masked in comparisons (normalize lockNames).
 */
import { sleep, useCompatServers } from '../support/compat';

describe('compat: lock / elect', () => {
  const cmp = useCompatServers();

  it('a second locker waits until the first lets go (held by a long-running etcdctl lock)', async () => {
    const obs = await cmp.scenario(
      async ({ ctl }) => {
        const first = ctl.spawn(['lock', 'mylock']);
        const firstOut = await first.waitFor(/\n\n$/);
        const second = ctl.spawn(['lock', 'mylock']);
        await sleep(1500);
        const secondWhileHeld = second.stdout();
        const firstRes = await first.stop('SIGTERM'); // etcdctl unlocks on SIGTERM/SIGINT and exits 0
        const secondOut = await second.waitFor(/\n\n$/);
        const secondRes = await second.stop('SIGTERM');
        return {
          firstOut,
          secondWhileHeld,
          first: { code: firstRes.code, stderr: firstRes.stderr },
          secondOut,
          second: { code: secondRes.code, stderr: secondRes.stderr },
          differentKeys: firstOut !== secondOut,
          afterwards: (await ctl.run(['get', 'mylock/', '--prefix', '--keys-only'])).stdout,
        };
      },
      { normalize: { lockNames: ['mylock'] } },
    );
    expect(obs.firstOut).toMatch(/^mylock\/[0-9a-f]+\n\n$/);
    expect(obs.secondWhileHeld).toBe('');
    expect(obs.first).toEqual({ code: 0, stderr: '' });
    expect(obs.secondOut).toMatch(/^mylock\/[0-9a-f]+\n\n$/);
    expect(obs.differentKeys).toBe(true);
    expect(obs.second).toEqual({ code: 0, stderr: '' });
    expect(obs.afterwards).toBe(''); // both unlocked (their keys deleted)
  }, 30000);

  it('lock name -- command: runs the command while holding the lock, with ETCD_LOCK_KEY / ETCD_LOCK_REV', async () => {
    const obs = await cmp.scenario(
      async ({ ctl }) => {
        const t0 = Date.now();
        const one = ctl.spawn(['lock', 'cmdlock', '--', 'sh', '-c', 'echo "held1 $ETCD_LOCK_KEY"; sleep 2; echo done1']);
        await one.waitFor(/held1/);
        const two = ctl.spawn(['lock', 'cmdlock', '--', 'sh', '-c', 'echo "held2 $ETCD_LOCK_KEY"']);
        const r1 = await one.exited();
        const r2 = await two.exited();
        const t1 = Date.now();
        const fail = await ctl.run(['lock', 'cmdlock', '--', 'sh', '-c', 'exit 3']);
        return { r1, r2, waited: t1 - t0 >= 1900, fail };
      },
      { normalize: { lockNames: ['cmdlock'] } },
    );
    expect(obs.r1).toMatchObject({ code: 0, stderr: '' });
    expect(obs.r1.stdout).toMatch(/^held1 cmdlock\/[0-9a-f]+\ndone1\n$/);
    expect(obs.r2).toMatchObject({ code: 0, stderr: '' });
    expect(obs.r2.stdout).toMatch(/^held2 cmdlock\/[0-9a-f]+\n$/);
    expect(obs.waited).toBe(true);
    // The command's failure is reported by etcdctl, exit 1.
    expect(obs.fail).toMatchObject({ code: 1, stdout: '', stderr: 'Error: exit status 3\n' });
  }, 30000);

  it('elect: leader prints key and value, observer (-l) follows leadership changes', async () => {
    const obs = await cmp.scenario(
      async ({ ctl }) => {
        const e1 = ctl.spawn(['elect', 'myelect', 'p1']);
        await e1.waitFor(/p1\n$/);
        const observer = ctl.spawn(['elect', '-l', 'myelect']);
        await observer.waitFor(/p1\n$/);
        const e2 = ctl.spawn(['elect', 'myelect', 'p2']);
        await sleep(1000);
        const e2WhileE1Leads = e2.stdout();
        const r1 = await e1.stop('SIGTERM'); // resigns
        await e2.waitFor(/p2\n$/);
        await observer.waitFor(/p2\n$/);
        // The observer stops while it watches p2's key. Stopping e2 first would delete that key and
        // race the observer's next Get against its SIGTERM (etcdctl then logs a cancelled call).
        const ro = await observer.stop('SIGTERM');
        const r2 = await e2.stop('SIGTERM');
        return { r1, e2WhileE1Leads, r2, ro };
      },
      { normalize: { lockNames: ['myelect'] } },
    );
    expect(obs.r1).toMatchObject({ code: 0, stderr: '' });
    expect(obs.r1.stdout).toMatch(/^myelect\/[0-9a-f]+\np1\n$/);
    expect(obs.e2WhileE1Leads).toBe('');
    expect(obs.r2).toMatchObject({ code: 0, stderr: '' });
    expect(obs.r2.stdout).toMatch(/^myelect\/[0-9a-f]+\np2\n$/);
    expect(obs.ro).toMatchObject({ code: 0, stderr: '' });
    expect(obs.ro.stdout).toMatch(/^myelect\/[0-9a-f]+\np1\nmyelect\/[0-9a-f]+\np2\n$/);
  }, 30000);

  it('usage errors (exit 128)', async () => {
    expect(await cmp.run(['lock'])).toMatchObject({
      code: 128,
      stderr: 'Error: lock takes a lock name argument and an optional command to execute\n',
    });
    expect(await cmp.run(['elect'])).toMatchObject({
      code: 128,
      stderr: 'Error: elect takes one election name argument and an optional proposal argument\n',
    });
    expect(await cmp.run(['elect', 'x'])).toMatchObject({ code: 128, stderr: 'Error: no proposal argument but -l not set\n' });
  });
});
