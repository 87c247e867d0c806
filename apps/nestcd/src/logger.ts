import { ConsoleLogger, LogLevel } from '@nestjs/common';

/** etcd logs to stderr and keeps stdout quiet; we do the same, in colour only on a terminal. */
export class StderrLogger extends ConsoleLogger {
  constructor(levels: LogLevel[]) {
    super('nestcd', { logLevels: levels, colors: process.stderr.isTTY === true, prefix: 'nestcd' });
  }

  protected override printMessages(messages: unknown[], context?: string, logLevel?: LogLevel, _stream?: 'stdout' | 'stderr', errorStack?: unknown): void {
    super.printMessages(messages, context, logLevel, 'stderr', errorStack);
  }
}

export function logLevelsFor(level: string, debug: boolean): LogLevel[] {
  if (debug || level === 'debug') return ['log', 'error', 'warn', 'debug', 'fatal'];
  if (level === 'info') return ['log', 'error', 'warn', 'fatal'];
  if (level === 'warn') return ['error', 'warn', 'fatal'];
  return ['error', 'fatal'];
}
