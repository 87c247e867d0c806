// lock and elect, with etcd's concurrency recipes (clientv3/concurrency Mutex and Election) on the wire, so
// nestcdctl and etcdctl lockers/candidates queue together.
import { prefixEnd, type KeepAlive, type KvClient, type RangeResponse } from '@nestcd/client';
import { spawn } from 'node:child_process';
import { Command } from 'commander';
import type { Cli } from '../cli';
import { errorText, ExitCode, fail, out } from '../context';

interface Session {
  lease: bigint;
  keepAlive: KeepAlive;
  /** rejects when the lease is lost. */
  lost: Promise<never>;
}

async function openSession(c: KvClient, ttl: number): Promise<Session> {
  const g = await c.leaseGrant(ttl);
  let onLost!: (e: Error) => void;
  const lost = new Promise<never>((_r, reject) => (onLost = reject));
  lost.catch(() => undefined);
  const keepAlive = c.leaseKeepAlive(g.id, { onLost: (e) => onLost(e) });
  return { lease: g.id, keepAlive, lost };
}

/** Waits until no key under `pfx` created at or before `maxCreateRev` remains (concurrency.waitDeletes). */
async function waitDeletes(c: KvClient, pfx: Buffer, maxCreateRev: number): Promise<void> {
  for (;;) {
    const r = await c.range({ key: pfx, rangeEnd: prefixEnd(pfx), sortTarget: 'create', sortOrder: 'descend', limit: 1, maxCreateRevision: maxCreateRev });
    if (r.kvs.length === 0) return;
    const key = r.kvs[0].key;
    await new Promise<void>((resolve, reject) => {
      const w = c.watch(
        { key, startRevision: r.header.revision + 1, filters: ['noput'] },
        {
          onEvents(b) {
            if (b.events.some((e) => e.type === 'delete')) {
              void w.cancel();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
  }
}

/** Mutex.Lock / Election.Campaign: create our key (or find it), then wait for every older key to go. */
async function queue(c: KvClient, pfx: Buffer, lease: bigint, value: Buffer): Promise<{ key: Buffer; rev: number }> {
  const key = Buffer.concat([pfx, Buffer.from(lease.toString(16))]);
  const owner = { range: { key: pfx, rangeEnd: prefixEnd(pfx), sortTarget: 'create' as const, sortOrder: 'ascend' as const, limit: 1 } };
  const r = await c.txn({
    compare: [{ key, target: 'create', result: 'equal', value: 0 }],
    success: [{ put: { key, value, lease } }, owner],
    failure: [{ range: { key } }, owner],
  });
  let rev = r.header.revision;
  if (!r.succeeded) rev = (r.responses[0] as { range: RangeResponse }).range.kvs[0].createRevision;
  const first = (r.responses[1] as { range: RangeResponse }).range.kvs;
  if (first.length && first[0].createRevision !== rev) await waitDeletes(c, pfx, rev - 1);
  return { key, rev };
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

export function registerConcurrency(program: Command, cli: Cli): void {
  program
    .command('lock')
    .summary('Acquires a named lock')
    .usage('<lockname> [exec-command arg1 arg2 ...]')
    .argument('[args...]')
    .option('--ttl <seconds>', 'timeout for session', '10')
    .action(async (args: string[], o: { ttl: string }) => {
      if (args.length === 0) fail(ExitCode.BadArgs, 'lock takes a lock name argument and an optional command to execute');
      const c = cli.client;
      const signalled = untilSignal().then(() => 'signal' as const);
      let s: Session;
      try {
        s = await openSession(c, Number(o.ttl));
      } catch (err) {
        return fail(ExitCode.Error, errorText(err));
      }
      const release = async () => {
        s.keepAlive.close();
        await c.leaseRevoke(s.lease).catch(() => undefined);
      };
      const pfx = Buffer.from(`${args[0]}/`);
      const got = await Promise.race([queue(c, pfx, s.lease, Buffer.alloc(0)), signalled]);
      if (got === 'signal') {
        await release();
        return;
      }
      if (args.length > 1) {
        const code = await new Promise<number>((resolve) => {
          const child = spawn(args[1], args.slice(2), {
            stdio: 'inherit',
            env: { ETCD_LOCK_KEY: got.key.toString(), ETCD_LOCK_REV: String(got.rev), ...process.env },
          });
          child.on('error', () => resolve(1));
          child.on('exit', (code) => resolve(code ?? 1));
        });
        await release();
        if (code !== 0) fail(ExitCode.Error, `exit status ${code}`);
        return;
      }
      out(`${got.key.toString()}\n`);
      const end = await Promise.race([signalled, s.lost.catch(() => 'lost' as const)]);
      if (end === 'lost') fail(ExitCode.Error, 'session expired');
      out('\n'); // etcdctl 3.4 ends the line the terminal's ^C started
      await release();
    });

  program
    .command('elect')
    .summary('Observes and participates in leader election')
    .usage('<election-name> [proposal]')
    .argument('[args...]')
    .option('-l, --listen', 'observation mode')
    .action(async (args: string[], o: { listen?: boolean }) => {
      if (args.length !== 1 && args.length !== 2) fail(ExitCode.BadArgs, 'elect takes one election name argument and an optional proposal argument');
      if (o.listen && args.length !== 1) fail(ExitCode.BadArgs, 'elect -l takes one election name argument');
      if (!o.listen && args.length !== 2) fail(ExitCode.BadArgs, 'no proposal argument but -l not set');
      const c = cli.client;
      const p = cli.printer();
      const pfx = Buffer.from(`${args[0]}/`);
      const signalled = untilSignal().then(() => 'signal' as const);
      if (o.listen) {
        await Promise.race([observe(c, pfx, (r) => out(p.get(r))), signalled]);
        return;
      }
      const s = await openSession(c, 60).catch((err) => fail(ExitCode.Error, errorText(err)));
      const release = async () => {
        s.keepAlive.close();
        await c.leaseRevoke(s.lease).catch(() => undefined);
      };
      const got = await Promise.race([queue(c, pfx, s.lease, Buffer.from(args[1])), signalled]);
      if (got !== 'signal') {
        out(p.get(await c.range({ key: got.key })));
        const end = await Promise.race([signalled, s.lost.catch(() => 'lost' as const)]);
        if (end === 'lost') fail(ExitCode.Error, 'elect: session expired');
      }
      await release();
    });
}

/** Election.Observe: prints the leader's key and value each time the leader or its proposal changes. */
async function observe(c: KvClient, pfx: Buffer, print: (r: RangeResponse) => void): Promise<never> {
  for (;;) {
    const r = await c.range({ key: pfx, rangeEnd: prefixEnd(pfx), sortTarget: 'create', sortOrder: 'ascend', limit: 1 });
    let leader = r.kvs[0];
    let rev = r.header.revision;
    if (!leader) {
      // wait for the first candidate
      leader = await new Promise((resolve) => {
        const w = c.watch({ key: pfx, rangeEnd: prefixEnd(pfx), startRevision: rev + 1, filters: ['nodelete'] }, {
          onEvents(b) {
            void w.cancel();
            resolve(b.events[0].kv);
          },
        });
      });
      rev = leader.modRevision;
    }
    print({ header: r.header, kvs: [leader], more: false, count: 1 });
    // follow the leader key until it is deleted
    await new Promise<void>((resolve) => {
      const w = c.watch({ key: leader.key, startRevision: rev + 1 }, {
        onEvents(b) {
          for (const e of b.events) {
            if (e.type === 'delete') {
              void w.cancel();
              resolve();
              return;
            }
            print({ header: b.header, kvs: [e.kv], more: false, count: 1 });
          }
        },
      });
    });
  }
}
