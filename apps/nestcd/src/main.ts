import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ConfigError, parseConfig, usage } from '@nestcd/config';
import { CLUSTER_VERSION, SERVER_VERSION } from '@nestcd/server';
import { logLevelsFor, StderrLogger } from './logger';
import { NestcdModule } from './nestcd.module';

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`nestcd: ${err.message}\nRun 'nestcd --help' for the list of flags.\n`);
      process.exit(2);
    }
    throw err;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`nestcd Version: ${SERVER_VERSION}\netcd API Version: ${CLUSTER_VERSION}\nNode.js Version: ${process.version}\n`);
    return;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const { config, warnings } = parsed;
  const logger = new StderrLogger(logLevelsFor(config.logLevel, config.debug));
  for (const w of warnings) logger.warn(w);
  // abortOnError off: a member that cannot start (data dir locked, corrupt WAL) exits with its reason.
  const app = await NestFactory.createApplicationContext(NestcdModule.forConfig(config), { logger, abortOnError: false });
  app.enableShutdownHooks(['SIGINT', 'SIGTERM']);
  await app.init();
}

main().catch((err: Error) => {
  process.stderr.write(`nestcd: ${err.message}\n`);
  process.exit(1);
});
