// member, endpoint, alarm, defrag, move-leader, snapshot save/status.
import { Command } from 'commander';
import { createWriteStream, renameSync } from 'node:fs';
import type { Cli } from '../cli';
import { errorText, errOut, ExitCode, fail, out } from '../context';
import { goParseInt, goQuote } from '../format';
import type { EpHashKV, EpHealth, EpStatus } from '../printers';

function memberIdArg(arg: string): bigint {
  try {
    return goParseInt(arg, 16, true);
  } catch (err) {
    return fail(ExitCode.BadArgs, `bad member ID arg (${(err as Error).message}), expecting ID in Hex`);
  }
}

const splitUrls = (s: string | undefined) => (s ?? '').split(',').map((u) => u.trim()).filter(Boolean);

/** The endpoints a maintenance command talks to: --endpoints, or with --cluster every member's client URLs. */
async function endpointsOf(cli: Cli, cluster: boolean): Promise<string[]> {
  if (!cluster) return cli.globals.endpoints;
  let r;
  try {
    r = await cli.client.memberList();
  } catch (err) {
    return fail(ExitCode.Error, errorText(err));
  }
  return r.members.flatMap((m) => m.clientUrls);
}

export function registerCluster(program: Command, cli: Cli): void {
  const member = program.command('member').summary('Membership related commands');

  member
    .command('add')
    .summary('Adds a member into the cluster')
    .usage('<memberName> [options]')
    .argument('[args...]')
    .option('--peer-urls <urls>', 'comma separated peer URLs for the new member.', '')
    .option('--learner', 'indicates if the new member is raft learner')
    .action(async (args: string[], o: { peerUrls: string; learner?: boolean }) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'member name not provided');
      if (args.length > 1) fail(ExitCode.BadArgs, `too many arguments, expected 1 argument, got ${args.length}`);
      const name = args[0];
      if (!o.peerUrls) fail(ExitCode.BadArgs, 'member peer urls not provided');
      const urls = splitUrls(o.peerUrls);
      const p = cli.printer();
      let r;
      try {
        r = await cli.client.memberAdd(urls, !!o.learner);
      } catch (err) {
        return fail(ExitCode.Error, errorText(err));
      }
      out(p.memberChange('added to', r.member.id, r));
      if (cli.globals.writeOut !== 'simple') return;
      const list = await cli.client.memberList().catch((err) => fail(ExitCode.Error, errorText(err)));
      const conf = list.members.flatMap((m) => m.peerUrls.map((u) => `${m.id === r.member.id ? name : m.name}=${u}`));
      out(
        `\nETCD_NAME=${goQuote(name)}\nETCD_INITIAL_CLUSTER=${goQuote(conf.join(','))}\n` +
          `ETCD_INITIAL_ADVERTISE_PEER_URLS=${goQuote(o.peerUrls)}\nETCD_INITIAL_CLUSTER_STATE="existing"\n`,
      );
    });

  member
    .command('remove')
    .summary('Removes a member from the cluster')
    .usage('<memberID>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'member ID is not provided');
      const id = memberIdArg(args[0]);
      const p = cli.printer();
      const r = await cli.client.memberRemove(id).catch((err) => fail(ExitCode.Error, errorText(err)));
      out(p.memberChange('removed from', id, r));
    });

  member
    .command('update')
    .summary('Updates a member in the cluster')
    .usage('<memberID> [options]')
    .argument('[args...]')
    .option('--peer-urls <urls>', 'comma separated peer URLs for the updated member.', '')
    .action(async (args: string[], o: { peerUrls: string }) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'member ID is not provided');
      const id = memberIdArg(args[0]);
      if (!o.peerUrls) fail(ExitCode.BadArgs, 'member peer urls not provided');
      const p = cli.printer();
      const r = await cli.client.memberUpdate(id, splitUrls(o.peerUrls)).catch((err) => fail(ExitCode.Error, errorText(err)));
      out(p.memberChange('updated in', id, r));
    });

  member
    .command('promote')
    .summary('Promotes a non-voting member in the cluster')
    .usage('<memberID>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'member ID is not provided');
      const id = memberIdArg(args[0]);
      const p = cli.printer();
      const r = await cli.client.memberPromote(id).catch((err) => fail(ExitCode.Error, errorText(err)));
      out(p.memberChange('promoted in', id, r));
    });

  member
    .command('list')
    .summary('Lists all members in the cluster')
    .argument('[args...]')
    .action(async () => {
      const p = cli.printer();
      const r = await cli.client.memberList().catch((err) => fail(ExitCode.Error, errorText(err)));
      out(p.memberList(r));
    });

  const endpoint = program.command('endpoint').summary('Endpoint related commands');
  endpoint.option('--cluster', 'use all endpoints from the cluster member list');
  const clusterFlag = () => !!endpoint.opts().cluster;

  endpoint
    .command('health')
    .summary('Checks the healthiness of endpoints specified in `--endpoints` flag')
    .argument('[args...]')
    .action(async () => {
      const eps = await endpointsOf(cli, clusterFlag());
      const results: EpHealth[] = [];
      await Promise.all(
        eps.map(async (ep) => {
          const c = cli.clientFor(ep);
          const start = process.hrtime.bigint();
          let error = '';
          try {
            // a linearizable read commits through raft, as etcdctl's health check does.
            await c.range({ key: Buffer.from('health') });
          } catch (err) {
            const text = errorText(err);
            if (!/permission denied/.test(text)) error = text;
          }
          const tookNs = Number(process.hrtime.bigint() - start);
          if (!error) {
            try {
              const alarms = await c.alarmList();
              if (alarms.alarms.length) error = `Active Alarm(s): ${alarms.alarms.map((a) => a.alarm).join(', ')}`;
            } catch (err) {
              error = errorText(err);
            }
          }
          results.push({ ep, health: !error, tookNs, error });
        }),
      );
      const [stdout, stderr] = cli.printer().endpointHealth(results);
      out(stdout);
      errOut(stderr);
      if (results.some((h) => !h.health)) fail(ExitCode.Error, 'unhealthy cluster');
    });

  endpoint
    .command('status')
    .summary('Prints out the status of endpoints specified in `--endpoints` flag')
    .argument('[args...]')
    .action(async () => {
      const eps = await endpointsOf(cli, clusterFlag());
      const list: EpStatus[] = [];
      let failed = false;
      for (const ep of eps) {
        try {
          list.push({ ep, resp: await cli.clientFor(ep).status() });
        } catch (err) {
          errOut(`Failed to get the status of endpoint ${ep} (${errorText(err)})\n`);
          failed = true;
        }
      }
      if (list.length) out(cli.printer().endpointStatus(list));
      if (failed) process.exitCode = ExitCode.Error;
    });

  endpoint
    .command('hashkv')
    .summary('Prints the KV history hash for each endpoint in --endpoints')
    .argument('[args...]')
    .option('--rev <rev>', 'maximum revision to hash (default: all revisions)', '0')
    .action(async (_args: string[], o: { rev: string }) => {
      const eps = await endpointsOf(cli, clusterFlag());
      const list: EpHashKV[] = [];
      let failed = false;
      for (const ep of eps) {
        try {
          list.push({ ep, resp: await cli.clientFor(ep).hashKV(Number(o.rev)) });
        } catch (err) {
          errOut(`Failed to get the hash of endpoint ${ep} (${errorText(err)})\n`);
          failed = true;
        }
      }
      if (list.length) out(cli.printer().endpointHashKV(list));
      if (failed) process.exitCode = ExitCode.Error;
    });

  const alarm = program.command('alarm').summary('Alarm related commands');
  alarm
    .command('list')
    .summary('Lists all alarms')
    .argument('[args...]')
    .action(async () => {
      const r = await cli.client.alarmList().catch((err) => fail(ExitCode.Error, errorText(err)));
      out(cli.printer().alarm(r));
    });
  alarm
    .command('disarm')
    .summary('Disarms all alarms')
    .argument('[args...]')
    .action(async () => {
      const list = await cli.client.alarmList().catch((err) => fail(ExitCode.Error, errorText(err)));
      let last = { header: list.header, alarms: [] as typeof list.alarms };
      for (const a of list.alarms) {
        const r = await cli.client.alarmDisarm(a).catch((err) => fail(ExitCode.Error, errorText(err)));
        last = { header: r.header, alarms: [...last.alarms, ...r.alarms] };
      }
      out(cli.printer().alarm(list.alarms.length ? last : { header: list.header, alarms: [] }));
    });

  program
    .command('defrag')
    .summary('Defragments the storage of the etcd members with given endpoints')
    .argument('[args...]')
    .option('--cluster', 'use all endpoints from the cluster member list')
    .action(async (_args: string[], o: { cluster?: boolean }) => {
      const eps = await endpointsOf(cli, !!o.cluster);
      let failed = false;
      for (const ep of eps) {
        try {
          await cli.clientFor(ep).defragment();
          out(`Finished defragmenting etcd member[${ep}]\n`);
        } catch (err) {
          errOut(`Failed to defragment etcd member[${ep}] (${errorText(err)})\n`);
          failed = true;
        }
      }
      if (failed) process.exitCode = ExitCode.Error;
    });

  program
    .command('move-leader')
    .summary('Transfers leadership to another etcd cluster member.')
    .usage('<transferee-member-id>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'move-leader command needs 1 argument');
      let target: bigint;
      try {
        target = goParseInt(args[0], 16, true);
      } catch (err) {
        return fail(ExitCode.BadArgs, (err as Error).message);
      }
      const eps = cli.globals.endpoints;
      for (const ep of eps) {
        const c = cli.clientFor(ep);
        const s = await c.status().catch((err) => fail(ExitCode.Error, errorText(err)));
        if (s.header.memberId === s.leader) {
          const r = await c.moveLeader(target).catch((err) => fail(ExitCode.Error, errorText(err)));
          out(cli.printer().moveLeader(s.leader, target, r.header));
          return;
        }
      }
      fail(ExitCode.BadArgs, `no leader endpoint given at [${eps.join(' ')}]`);
    });

  const snapshot = program.commands.find((c) => c.name() === 'snapshot') ?? program.command('snapshot').summary('Manages etcd node snapshots');
  snapshot
    .command('save')
    .summary('Stores an etcd node backend snapshot to a given file')
    .usage('<filename>')
    .argument('[args...]')
    .action(async (args: string[]) => {
      if (args.length !== 1) fail(ExitCode.BadArgs, 'snapshot save expects one argument');
      const eps = cli.globals.endpoints;
      if (eps.length !== 1) fail(ExitCode.Interrupted, `snapshot must be requested to one selected node, not multiple [${eps.join(' ')}]`);
      const path = args[0];
      const part = `${path}.part`;
      await new Promise<void>((resolve, reject) => {
        const src = cli.client.snapshot();
        const dst = createWriteStream(part, { mode: 0o600 });
        src.on('error', (err) => {
          dst.destroy();
          reject(err);
        });
        dst.on('error', reject);
        dst.on('finish', () => resolve());
        src.pipe(dst);
      }).catch((err) => fail(ExitCode.Error, errorText(err)));
      renameSync(part, path);
      out(`Snapshot saved at ${path}\n`);
    });
}
