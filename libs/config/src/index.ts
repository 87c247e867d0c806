export { ConfigSchema } from './config';
export type { NestcdConfig } from './config';
export { FLAGS, envName } from './flags';
export type { FlagSpec } from './flags';
export { ConfigError, parseConfig, usage } from './parse';
export type { ParsedCommand } from './parse';
