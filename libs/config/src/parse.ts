import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigSchema, NestcdConfig } from './config';
import { envName, FLAGS, FlagSpec } from './flags';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type ParsedCommand =
  | { kind: 'run'; config: NestcdConfig; warnings: string[] }
  | { kind: 'version' }
  | { kind: 'help' };

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Go's flag package (which etcd uses) accepts -flag and --flag, "-flag value" and "-flag=value", and a bare
 * boolean flag or "-flag=true|false". Rewrite argv to that one spelling so node's parseArgs can read it.
 */
function normalizeArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (const arg of argv) {
    const m = /^--?([a-z][a-z0-9-]*)(=.*)?$/i.exec(arg);
    if (!m) {
      out.push(arg);
      continue;
    }
    const [, name, assigned] = m;
    const spec = FLAGS[name];
    if (spec?.kind === 'bool' && assigned === undefined) out.push(`--${name}=true`);
    else out.push(`--${name}${assigned ?? ''}`);
  }
  return out;
}

function convert(flag: string, spec: FlagSpec, raw: unknown, source: string): unknown {
  if (raw === undefined || raw === null) return undefined;
  if (spec.kind === 'bool') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).toLowerCase();
    if (['true', '1', 't'].includes(s)) return true;
    if (['false', '0', 'f'].includes(s)) return false;
    throw new ConfigError(`invalid boolean value "${String(raw)}" for ${source}`);
  }
  if (spec.kind === 'list') {
    if (Array.isArray(raw)) return raw.map(String);
    return String(raw).split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (spec.kind === 'int') return typeof raw === 'number' ? raw : String(raw).trim();
  return String(raw);
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const flag = i.path.length ? `--${String(i.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : 'config';
      return `${flag}: ${i.message}`;
    })
    .join('; ');
}

/**
 * Builds the member's configuration the way etcd does: command-line flags win over ETCD_* environment
 * variables; with --config-file (or ETCD_CONFIG_FILE) the YAML file is the whole configuration.
 */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedCommand {
  let values: Record<string, string | undefined>;
  let positionals: string[];
  try {
    const options = Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }]));
    ({ values, positionals } = parseArgs({ args: normalizeArgv(argv), options, strict: true, allowPositionals: true }) as {
      values: Record<string, string | undefined>;
      positionals: string[];
    });
  } catch (err) {
    const m = /Unknown option '([^']+)'/.exec((err as Error).message);
    throw new ConfigError(m ? `flag provided but not defined: ${m[1]}` : (err as Error).message);
  }
  if (positionals.length > 0) throw new ConfigError(`'${positionals[0]}' is not a valid flag`);

  if (values.version !== undefined && convert('version', FLAGS.version, values.version, '--version')) return { kind: 'version' };
  if (values.help !== undefined && convert('help', FLAGS.help, values.help, '--help')) return { kind: 'help' };

  const warnings: string[] = [];
  const raw: Record<string, unknown> = {};
  const configFile = values['config-file'] ?? env[envName('config-file')];
  if (configFile) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(configFile, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot load config file ${configFile}: ${(err as Error).message}`);
    }
    if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc))) throw new ConfigError(`config file ${configFile} must be a YAML mapping of flag names to values`);
    for (const [key, value] of Object.entries((doc ?? {}) as Record<string, unknown>)) {
      const spec = FLAGS[key];
      if (!spec) {
        warnings.push(`config file key "${key}" is not an etcd flag nestcd knows; ignored`);
        continue;
      }
      if (spec.inert) warnings.push(`"${key}" is accepted for compatibility and has no effect in nestcd`);
      raw[camel(key)] = convert(key, spec, value, `config file key "${key}"`);
    }
  } else {
    for (const [flag, spec] of Object.entries(FLAGS)) {
      if (flag === 'version' || flag === 'help' || flag === 'config-file') continue;
      const fromFlag = values[flag];
      const fromEnv = env[envName(flag)];
      if (fromFlag !== undefined && fromEnv !== undefined) warnings.push(`ignored environment variable ${envName(flag)} since the flag is set`);
      const chosen = fromFlag ?? fromEnv;
      if (chosen === undefined) continue;
      if (spec.inert) warnings.push(`--${flag} is accepted for compatibility and has no effect in nestcd`);
      raw[camel(flag)] = convert(flag, spec, chosen, fromFlag !== undefined ? `flag --${flag}` : envName(flag));
    }
    const known = new Set(Object.keys(FLAGS).map(envName));
    for (const key of Object.keys(env)) {
      if (key.startsWith('ETCD_') && !known.has(key) && !key.startsWith('ETCDCTL_') && key !== 'ETCD_UNSUPPORTED_ARCH') {
        warnings.push(`unrecognized environment variable ${key}`);
      }
    }
  }

  const result = ConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(`invalid configuration: ${formatIssues(result.error)}`);
  const config = result.data;
  if (!config.initialCluster.has(config.name)) {
    throw new ConfigError(`couldn't find local name "${config.name}" in the initial cluster configuration`);
  }
  return { kind: 'run', config, warnings };
}

export function usage(program = 'nestcd'): string {
  const lines = [`Usage: ${program} [flags]`, '', 'etcd-compatible flags (each also read from ETCD_<FLAG>, or from a YAML --config-file):', ''];
  for (const [flag, spec] of Object.entries(FLAGS)) {
    lines.push(`  --${flag}${spec.kind === 'bool' ? '' : ` <${spec.kind}>`}`);
    lines.push(`      ${spec.description}${spec.inert ? ' (accepted, no effect)' : ''}`);
  }
  return lines.join('\n');
}
