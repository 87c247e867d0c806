import { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { parseConfig } from '@nestcd/config';
import { EtcdServer } from '@nestcd/server';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemberLifecycle, NestcdModule } from '../../apps/nestcd/src/nestcd.module';

export interface InProcessMember {
  app: INestApplicationContext;
  server: EtcdServer;
  /** host:port of the gRPC client port */
  endpoint: string;
  close(): Promise<void>;
}

/** A nestcd member inside the test process, on a free loopback port, wired exactly as bin/nestcd wires it. */
export async function startInProcess(extraFlags: string[] = []): Promise<InProcessMember> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nestcd-it-'));
  const parsed = parseConfig(['--data-dir', dataDir, '--listen-client-urls', 'http://127.0.0.1:0', ...extraFlags], {});
  if (parsed.kind !== 'run') throw new Error('expected a runnable configuration');
  const app = await NestFactory.createApplicationContext(NestcdModule.forConfig(parsed.config), { logger: false });
  await app.init();
  const endpoint = `127.0.0.1:${app.get(MemberLifecycle).clientPorts[0]}`;
  const close = async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { app, server: app.get(EtcdServer), endpoint, close };
}
