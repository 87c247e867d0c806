// lease grant / revoke / timetolive / list / keep-alive.
import { Command } from 'commander';
import type { Cli } from '../cli';
import { errorText, ExitCode, fail, out } from '../context';
import { goParseInt, hex16 } from '../format';

function leaseArg(arg: string): bigint {
  try {
    return goParseInt(arg, 16);
  } catch (err) {
    return fail(ExitCode.BadArgs, `bad lease ID arg (${(err as Error).message}), expecting ID in Hex`);
  }
}

export function registerLease(program: Command, cli: Cli): void {
  const lease = program.command('lease').summary('Lease related commands');

  lease
    .command('grant')
    .summary('Creates leases')
    .usage('<ttl>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'lease grant command needs TTL argument');
      let ttl: bigint;
      try {
        ttl = goParseInt(args[0], 10);
      } catch (err) {
        return fail(ExitCode.BadArgs, `bad TTL (${(err as Error).message})`);
      }
      const p = cli.printer();
      try {
        out(p.grant(await cli.client.leaseGrant(Number(ttl))));
      } catch (err) {
        fail(ExitCode.Error, `failed to grant lease (${errorText(err)})`);
      }
    });

  lease
    .command('revoke')
    .summary('Revokes leases')
    .usage('<leaseID>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'lease revoke command needs 1 argument');
      const id = leaseArg(args[0]);
      const p = cli.printer();
      try {
        await cli.client.leaseRevoke(id);
      } catch (err) {
        fail(ExitCode.Error, `failed to revoke lease (${errorText(err)})`);
      }
      // RemoteClient.leaseRevoke returns no header; the current one stands in for -w json/fields.
      const header = cli.globals.writeOut === 'simple' ? undefined : (await cli.client.status()).header;
      out(p.revoke(id, header ?? { clusterId: 0n, memberId: 0n, revision: 0, raftTerm: 0 }));
    });

  lease
    .command('timetolive')
    .summary('Get lease information')
    .usage('<leaseID> [options]')
    .argument('[args...]')
    .option('--keys', 'Get keys attached to this lease')
    .action(async (args: string[], o: { keys?: boolean }) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'lease timetolive command needs lease ID as argument');
      const id = leaseArg(args[0]);
      const p = cli.printer();
      let r;
      try {
        r = await cli.client.leaseTimeToLive(id, !!o.keys);
      } catch (err) {
        return fail(ExitCode.Error, `failed to get TTL of lease ${hex16(id)} (${errorText(err)})`);
      }
      out(p.timeToLive(r, !!o.keys));
    });

  lease
    .command('list')
    .summary('List all active leases')
    .argument('[args...]')
    .action(async () => {
      const p = cli.printer();
      let r;
      try {
        r = await cli.client.leaseList();
      } catch (err) {
        return fail(ExitCode.Error, `failed to list leases (${errorText(err)})`);
      }
      out(p.leases(r));
    });

  lease
    .command('keep-alive')
    .summary('Keeps leases alive (renew)')
    .usage('[options] <leaseID>')
    .argument('[args...]')
    .option('--once', 'Resets the keep-alive time to its original value and exits immediately')
    .action(async (args: string[], o: { once?: boolean }) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'lease keep-alive command needs lease ID as argument');
      const id = leaseArg(args[0]);
      const p = cli.printer();
      if (o.once) {
        let r;
        try {
          r = await cli.client.leaseKeepAliveOnceFull(id);
        } catch (err) {
          // a keep-alive stream error: no unary-retry warning, and etcdctl exits with ExitBadConnection.
          return fail(ExitCode.BadConnection, (err as Error).message);
        }
        if (r.ttl <= 0) fail(ExitCode.BadConnection, 'etcdserver: requested lease not found');
        out(p.keepAlive(r));
        return;
      }
      // Renew every TTL/3 until the lease is gone, as clientv3's KeepAlive; each confirmation is printed.
      for (;;) {
        let r;
        try {
          r = await cli.client.leaseKeepAliveOnceFull(id);
        } catch {
          break;
        }
        if (r.ttl <= 0) break;
        out(p.keepAlive(r));
        await new Promise((res) => setTimeout(res, Math.max(500, (r.ttl * 1000) / 3)));
      }
      if (cli.globals.writeOut === 'simple') out(`lease ${hex16(id)} expired or revoked.\n`);
    });
}
