/**
 * A small service on the coordination recipes: `npm run example` (embedded store), or against a cluster:
 * NESTCD_ENDPOINTS=http://127.0.0.1:2379 npm run example. It serves, on EXAMPLE_PORT (default: a free port):
 *   GET /health        the terminus-style health of the coordination module
 *   GET /jobs/<id>     runs job <id> under the lock "jobs/<id>"
 *   GET /report        runs the report if this instance leads "nightly-report"
 *   GET /peer          a peer instance, round-robin
 *   POST /config/limits  JSON body, validated: {"maxJobs": 2, "greeting": "hi"}
 * EXAMPLE_EXIT_AFTER_MS stops it after a while (for a smoke run).
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { ConfigWatcher, CoordinationHealthIndicator, TaskRegistry } from '@nestcd/recipes';
import { firstValueFrom } from 'rxjs';
import { AppModule } from './app.module';
import { FleetService, JobsService, ReportService } from './services';

async function body(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const chunk of req) s += String(chunk);
  return s;
}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(AppModule);
  app.enableShutdownHooks();
  const logger = new Logger('Example');
  const jobs = app.get(JobsService);
  const report = app.get(ReportService);
  const fleet = app.get(FleetService);
  const health = app.get(CoordinationHealthIndicator);
  const config = app.get(ConfigWatcher);
  const tasks = app.get(TaskRegistry);

  const send = (res: ServerResponse, status: number, payload: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(payload, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
  };
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const job = /^\/jobs\/([\w-]+)$/.exec(url.pathname);
      if (url.pathname === '/health') {
        const h = await health.isHealthy('coordination');
        return send(res, h.coordination.status === 'up' ? 200 : 503, h);
      }
      if (job) return send(res, 200, { result: await jobs.run({ id: job[1] }) });
      if (url.pathname === '/report') return send(res, 200, { result: report.produce() ?? 'not the leader' });
      if (url.pathname === '/peer') return send(res, 200, { peer: (await fleet.peer()) ?? null });
      if (url.pathname === '/tasks') return send(res, 200, await firstValueFrom(tasks.tasks$()));
      if (url.pathname === '/config/limits' && req.method === 'POST') return send(res, 200, { revision: await config.set('limits', JSON.parse(await body(req)) as unknown) });
      return send(res, 404, { error: 'not found' });
    })().catch((err: unknown) => send(res, 500, { error: (err as Error).message }));
  });
  await new Promise<void>((r) => server.listen(Number(process.env.EXAMPLE_PORT ?? 0), '127.0.0.1', r));
  logger.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port} as ${fleet.id}`);
  app.get(AppModule); // resolves: the module is up

  const stop = async () => {
    server.close();
    await app.close();
  };
  process.once('SIGINT', () => void stop());
  if (process.env.EXAMPLE_EXIT_AFTER_MS) setTimeout(() => void stop(), Number(process.env.EXAMPLE_EXIT_AFTER_MS));
}

void main();
