/**
 * Static checks of deploy/ (issue 5): no Docker engine or systemd runs here, so the Dockerfile, the three-member
 * docker-compose.yaml, the systemd unit and the example EnvironmentFile are read as text and every flag and
 * ETCD_* variable they hand to nestcd goes through nestcd's own configuration parser (the one bin/nestcd runs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, NestcdConfig, parseConfig } from '@nestcd/config';

const ROOT = resolve(__dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
const read = (name: string) => readFileSync(join(DEPLOY, name), 'utf8');

// ------------------------------------------------------------------------------------------------------------
// one member: argv + environment through parseConfig, every warning counts as a problem
// ------------------------------------------------------------------------------------------------------------

interface MemberCheck {
  config?: NestcdConfig;
  problems: string[];
}

function checkMember(where: string, argv: string[], env: Record<string, string>): MemberCheck {
  try {
    const parsed = parseConfig(argv, env);
    if (parsed.kind !== 'run') return { problems: [`${where}: nestcd would print its ${parsed.kind} and exit instead of running`] };
    // Unknown flags are ConfigErrors; unknown ETCD_* variables, inert flags and flag-vs-variable conflicts are
    // warnings. A deployment file should produce none of them.
    return { config: parsed.config, problems: parsed.warnings.map((w) => `${where}: ${w}`) };
  } catch (err) {
    if (err instanceof ConfigError) return { problems: [`${where}: ${err.message}`] };
    throw err;
  }
}

// ------------------------------------------------------------------------------------------------------------
// Dockerfile
// ------------------------------------------------------------------------------------------------------------

interface Instruction { op: string; args: string }

function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!pending && (/^\s*#/.test(line) || !line.trim())) continue;
    if (pending && /^\s*#/.test(line)) continue; // comment lines inside a continuation are dropped, as Docker does
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full)!;
    out.push({ op: m[1].toUpperCase(), args: m[2] });
  }
  return out;
}

/** Exec form (JSON array) of ENTRYPOINT/CMD; the shell form would put /bin/sh -c in front of nestcd. */
function execForm(ins: Instruction | undefined): string[] | undefined {
  if (!ins) return undefined;
  const parsed: unknown = JSON.parse(ins.args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`${ins.op} is not an exec-form string array`);
  return parsed;
}

/** ENV KEY=VALUE ... (or the legacy ENV KEY VALUE). */
function dockerEnv(instructions: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { op, args } of instructions) {
    if (op !== 'ENV') continue;
    if (!args.includes('=')) {
      const [k, ...v] = args.split(/\s+/);
      env[k] = v.join(' ');
      continue;
    }
    for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\S*)/g)) env[m[1]] = m[3] ?? m[2];
  }
  return env;
}

interface DockerImage {
  stages: Instruction[][];
  runtime: Instruction[];
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
}

function readDockerfile(): DockerImage {
  const stages: Instruction[][] = [];
  for (const ins of dockerInstructions(read('Dockerfile'))) {
    if (ins.op === 'FROM') stages.push([]);
    if (!stages.length) continue; // ARG before FROM
    stages[stages.length - 1].push(ins);
  }
  const runtime = stages[stages.length - 1];
  const last = (op: string) => [...runtime].reverse().find((i) => i.op === op);
  return {
    stages,
    runtime,
    entrypoint: execForm(last('ENTRYPOINT')) ?? [],
    cmd: execForm(last('CMD')) ?? [],
    env: dockerEnv(runtime),
  };
}

// ------------------------------------------------------------------------------------------------------------
// docker-compose.yaml
// ------------------------------------------------------------------------------------------------------------

/** Compose splits a string `command:` like a POSIX shell would (quotes, backslashes), without running one. */
function shellSplit(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1])) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} in command: ${s}`);
  if (inWord) words.push(cur);
  return words;
}

type Service = Record<string, unknown>;

function serviceArgv(svc: Service, image: DockerImage): string[] {
  const cmd = svc.command;
  if (cmd === undefined || cmd === null) return image.cmd; // the image's CMD, if any
  if (typeof cmd === 'string') return shellSplit(cmd);
  if (Array.isArray(cmd)) return cmd.map(String);
  throw new Error(`command must be a string or a list, got ${typeof cmd}`);
}

/** environment: as a map (values may be numbers or booleans in YAML) or as a list of KEY=VALUE strings. */
function serviceEnv(name: string, svc: Service, problems: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  const set = (key: string, value: unknown) => {
    if (value === null || value === undefined) {
      // KEY alone means "take it from the host running compose": not something a test (or a reader) can check.
      if (key.startsWith('ETCD_')) problems.push(`${name}: ${key} has no value (passed through from the host)`);
      return;
    }
    env[key] = String(value);
  };
  const e = svc.environment;
  if (Array.isArray(e)) {
    for (const item of e.map(String)) {
      const eq = item.indexOf('=');
      if (eq < 0) set(item, undefined);
      else set(item.slice(0, eq), item.slice(eq + 1));
    }
  } else if (e && typeof e === 'object') {
    for (const [k, v] of Object.entries(e)) set(k, v);
  } else if (e !== undefined) {
    problems.push(`${name}: environment must be a map or a list`);
  }
  return env;
}

interface ComposeMember { service: string; argv: string[]; env: Record<string, string>; config: NestcdConfig }

const clusterKey = (c: NestcdConfig) => JSON.stringify([...c.initialCluster.entries()].sort(([a], [b]) => a.localeCompare(b)));

/** Every member of a compose file validated one by one, then as one cluster. */
function checkCompose(text: string, image: DockerImage): { doc: Record<string, unknown>; members: ComposeMember[]; problems: string[] } {
  // merge: true for the `<<: *anchor` keys compose supports
  const doc = parseYaml(text, { merge: true }) as Record<string, unknown>;
  const problems: string[] = [];
  const services = (doc?.services ?? {}) as Record<string, Service>;
  if (!Object.keys(services).length) problems.push('no services');
  const members: ComposeMember[] = [];
  for (const [name, svc] of Object.entries(services)) {
    const argv = serviceArgv(svc, image);
    const env = { ...image.env, ...serviceEnv(name, svc, problems) };
    const { config, problems: p } = checkMember(`service ${name}`, argv, env);
    problems.push(...p);
    if (config) members.push({ service: name, argv, env, config });
  }
  if (members.length !== Object.keys(services).length) return { doc, members, problems };

  // the members form one cluster
  const names = members.map((m) => m.config.name);
  if (new Set(names).size !== names.length) problems.push(`member names are not unique: ${names.join(', ')}`);
  const clusters = new Set(members.map((m) => clusterKey(m.config)));
  if (clusters.size !== 1) problems.push(`members disagree on --initial-cluster: ${[...clusters].join(' vs ')}`);
  const tokens = new Set(members.map((m) => m.config.initialClusterToken));
  if (tokens.size !== 1) problems.push(`members disagree on --initial-cluster-token: ${[...tokens].join(', ')}`);
  for (const m of members) {
    const c = m.config;
    const listed = [...c.initialCluster.keys()].sort();
    if (JSON.stringify(listed) !== JSON.stringify([...names].sort())) {
      problems.push(`${m.service}: --initial-cluster names ${listed.join(',')} but the members are ${names.join(',')}`);
    }
    const own = c.initialCluster.get(c.name) ?? [];
    if (JSON.stringify([...own].sort()) !== JSON.stringify([...c.initialAdvertisePeerUrls].sort())) {
      problems.push(`${m.service}: --initial-advertise-peer-urls ${c.initialAdvertisePeerUrls.join(',')} differ from its --initial-cluster entry ${own.join(',')}`);
    }
    // peers and clients reach a member by its compose service name (or hostname) on the shared network
    const svc = services[m.service];
    const reachable = new Set([m.service, String(svc.hostname ?? m.service)]);
    for (const u of [...c.initialAdvertisePeerUrls, ...c.advertiseClientUrls]) {
      if (!reachable.has(new URL(u).hostname)) problems.push(`${m.service}: advertises ${u}, which other containers cannot resolve`);
    }
  }
  return { doc, members, problems };
}

// ------------------------------------------------------------------------------------------------------------
// EnvironmentFile and systemd unit
// ------------------------------------------------------------------------------------------------------------

/** systemd EnvironmentFile syntax: KEY=VALUE lines, # or ; comments, optional quotes around the value. */
function parseEnvFile(text: string): { env: Record<string, string>; commented: Record<string, string>; problems: string[] } {
  const env: Record<string, string> = {};
  const commented: Record<string, string> = {};
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const commentedAssignment = /^[#;]\s*(ETCD_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (commentedAssignment) {
      commented[commentedAssignment[1]] = commentedAssignment[2];
      return;
    }
    if (line.startsWith('#') || line.startsWith(';')) return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) {
      problems.push(`line ${i + 1}: not KEY=VALUE: ${raw}`);
      return;
    }
    let value = m[2];
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    if (m[1] in env) problems.push(`line ${i + 1}: ${m[1]} set twice`);
    env[m[1]] = value;
  });
  return { env, commented, problems };
}

function parseUnit(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      current = [];
      sections.set(sec[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`unit line outside a section or without "=": ${raw}`);
    current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return sections;
}

// ============================================================================================================

describe('deploy/', () => {
  const image = readDockerfile();

  describe('Dockerfile', () => {
    it('is a multi-stage build on node:20-bookworm-slim: npm ci && npm run build, then production deps only', () => {
      expect(image.stages.length).toBeGreaterThanOrEqual(2);
      for (const stage of image.stages) expect(stage[0].args).toMatch(/^node:20-bookworm-slim(\s+AS\s+\S+)?$/i);
      const build = image.stages[0].filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
      expect(build).toMatch(/\bnpm ci\b(?!\s+--omit)/);
      expect(build).toMatch(/\bnpm run build\b/);
      const runtime = image.runtime.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
      expect(runtime).toMatch(/\bnpm ci --omit=dev\b/);
      expect(runtime).not.toMatch(/npm run build/);
    });

    it('copies dist/ and bin/ to where ENTRYPOINT runs bin/nestcd, as a non-root user, with the data dir a volume', () => {
      // resolve COPY --from destinations against WORKDIR as Docker does
      let workdir = '/';
      const copied = new Map<string, string>();
      let user: string | undefined;
      const volumes: string[] = [];
      const exposed: string[] = [];
      for (const { op, args } of image.runtime) {
        if (op === 'WORKDIR') workdir = posix.resolve(workdir, args);
        if (op === 'USER') user = args;
        if (op === 'VOLUME') volumes.push(...(args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/)));
        if (op === 'EXPOSE') exposed.push(...args.split(/\s+/));
        if (op === 'COPY' && /--from=/.test(args)) {
          const parts = args.split(/\s+/).filter((p) => !p.startsWith('--'));
          copied.set(posix.basename(parts[0]), posix.resolve(workdir, parts[parts.length - 1]));
        }
      }
      expect(image.entrypoint).toHaveLength(1);
      const binary = posix.resolve(workdir, image.entrypoint[0]);
      expect(binary.endsWith('/bin/nestcd')).toBe(true);
      const home = posix.dirname(posix.dirname(binary));
      expect(copied.get('bin')).toBe(`${home}/bin`);
      expect(copied.get('dist')).toBe(`${home}/dist`); // bin/nestcd loads ../dist/apps/nestcd/src/main.js
      expect(readFileSync(join(ROOT, 'bin', 'nestcd'), 'utf8')).toContain("'..', 'dist', 'apps', 'nestcd', 'src', 'main.js'");
      expect(user).toBeDefined();
      expect(user).not.toMatch(/^(root|0)(:|$)/);
      expect(volumes).toContain('/var/lib/nestcd');
      expect(exposed).toEqual(expect.arrayContaining(['2379', '2380']));
    });

    it("ENTRYPOINT/CMD flags and ENV variables are ones nestcd accepts", () => {
      expect(checkMember('Dockerfile', image.cmd, image.env).problems).toEqual([]);
    });

    it('has a .dockerignore for its build context (the repository root) that keeps what the build needs', () => {
      const ignore = read('Dockerfile.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
      expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', 'dist', '.git']));
      for (const needed of ['package.json', 'package-lock.json', 'nest-cli.json', 'tsconfig.json', 'tsconfig.build.json', 'apps', 'libs', 'bin']) {
        expect(ignore).not.toContain(needed);
        expect(existsSync(join(ROOT, needed))).toBe(true);
      }
    });
  });

  describe('docker-compose.yaml', () => {
    const text = read('docker-compose.yaml');
    const { doc, members, problems } = checkCompose(text, image);
    const services = (doc.services ?? {}) as Record<string, Service>;

    it('parses, and declares the classic three members etcd1..etcd3 built from deploy/Dockerfile', () => {
      expect(Object.keys(services)).toEqual(['etcd1', 'etcd2', 'etcd3']);
      for (const svc of Object.values(services)) {
        const build = svc.build as { context: string; dockerfile: string };
        expect(build).toBeDefined();
        const context = resolve(DEPLOY, build.context);
        expect(context).toBe(ROOT);
        expect(existsSync(join(context, build.dockerfile))).toBe(true);
        expect(svc.image).toBe(services.etcd1.image);
      }
    });

    it('every flag in command: and every ETCD_* variable in environment: is one nestcd accepts, without warnings', () => {
      expect(problems).toEqual([]);
      expect(members.map((m) => m.service)).toEqual(['etcd1', 'etcd2', 'etcd3']);
    });

    it('configures members both ways: flags in command: (string and list) and ETCD_* variables in environment:', () => {
      expect(members.some((m) => typeof services[m.service].command === 'string')).toBe(true);
      expect(members.some((m) => Array.isArray(services[m.service].command))).toBe(true);
      const byEnv = members.filter((m) => services[m.service].command === undefined);
      expect(byEnv.length).toBeGreaterThan(0);
      for (const m of byEnv) expect(Object.keys(m.env).filter((k) => k.startsWith('ETCD_')).length).toBeGreaterThanOrEqual(9);
    });

    it('the members agree on one cluster: same --initial-cluster naming every member, unique names, same token', () => {
      const names = members.map((m) => m.config.name);
      expect(names).toEqual(['etcd1', 'etcd2', 'etcd3']);
      for (const m of members) {
        const c = m.config;
        expect(c.name).toBe(m.service);
        expect([...c.initialCluster.keys()].sort()).toEqual(names);
        expect(c.initialCluster.get(c.name)).toEqual([`http://${m.service}:2380`]);
        expect(c.initialClusterState).toBe('new');
        expect(c.initialClusterToken).toBe(members[0].config.initialClusterToken);
        expect(c.initialClusterToken).not.toBe('etcd-cluster'); // a token of its own, not the default
        expect(c.listenClientUrls).toEqual(['http://0.0.0.0:2379']);
        expect(c.listenPeerUrls).toEqual(['http://0.0.0.0:2380']);
        expect(c.advertiseClientUrls).toEqual([`http://${m.service}:2379`]);
      }
      expect(new Set(members.map((m) => clusterKey(m.config))).size).toBe(1);
    });

    it('each member keeps its data dir on a volume of its own, and at least one member publishes its ports', () => {
      const sources: string[] = [];
      for (const m of members) {
        const vols = (services[m.service].volumes ?? []) as string[];
        const mounts = vols.map((v) => v.split(':'));
        const own = mounts.find(([, target]) => m.config.dataDir === target || m.config.dataDir.startsWith(`${target}/`));
        expect(own).toBeDefined();
        sources.push(own![0]);
        // a named volume must be declared at the top level
        if (!own![0].startsWith('.') && !own![0].startsWith('/')) expect(Object.keys((doc.volumes ?? {}) as object)).toContain(own![0]);
      }
      expect(new Set(sources).size).toBe(members.length);
      const published = members.filter((m) => ((services[m.service].ports ?? []) as string[]).some((p) => String(p).endsWith(':2379')));
      expect(published.length).toBeGreaterThan(0);
    });
  });

  describe('nestcd.env (EnvironmentFile example)', () => {
    const { env, commented, problems } = parseEnvFile(read('nestcd.env'));

    it('is KEY=VALUE lines of ETCD_* variables that nestcd accepts, without warnings', () => {
      expect(problems).toEqual([]);
      expect(Object.keys(env).every((k) => k.startsWith('ETCD_'))).toBe(true);
      expect(checkMember('nestcd.env', [], env).problems).toEqual([]);
    });

    it('sets up one member of a three-member cluster', () => {
      for (const key of ['ETCD_NAME', 'ETCD_DATA_DIR', 'ETCD_LISTEN_CLIENT_URLS', 'ETCD_ADVERTISE_CLIENT_URLS', 'ETCD_LISTEN_PEER_URLS',
        'ETCD_INITIAL_ADVERTISE_PEER_URLS', 'ETCD_INITIAL_CLUSTER', 'ETCD_INITIAL_CLUSTER_TOKEN', 'ETCD_INITIAL_CLUSTER_STATE',
        'ETCD_HEARTBEAT_INTERVAL', 'ETCD_ELECTION_TIMEOUT', 'ETCD_SNAPSHOT_COUNT', 'ETCD_QUOTA_BACKEND_BYTES']) {
        expect(env).toHaveProperty([key]);
      }
      const { config } = checkMember('nestcd.env', [], env);
      expect(config!.initialCluster.size).toBe(3);
      expect(config!.initialCluster.get(config!.name)).toEqual(config!.initialAdvertisePeerUrls);
      expect(config!.electionTimeout).toBeGreaterThanOrEqual(5 * config!.heartbeatInterval);
      // the systemd unit's StateDirectory is /var/lib/nestcd, the only writable place under ProtectSystem=strict
      expect(config!.dataDir.startsWith('/var/lib/nestcd/')).toBe(true);
    });

    it('its commented-out examples (TLS, compaction) are accepted too once uncommented', () => {
      expect(Object.keys(commented).length).toBeGreaterThan(0);
      // inert flags would only warn; none of the commented ones may be unknown or invalid
      const { problems: p } = checkMember('nestcd.env (all uncommented)', [], { ...env, ...commented });
      expect(p.filter((w) => !/accepted for compatibility/.test(w))).toEqual([]);
    });
  });

  describe('nestcd.service (systemd unit)', () => {
    const unit = parseUnit(read('nestcd.service'));
    const service = new Map<string, string[]>();
    for (const [k, v] of unit.get('Service') ?? []) service.set(k, [...(service.get(k) ?? []), v]);
    const one = (key: string) => {
      const values = service.get(key) ?? [];
      expect(values).toHaveLength(1);
      return values[0];
    };

    it('has [Unit], [Service] and [Install] sections', () => {
      expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
      expect(unit.get('Install')).toContainEqual(['WantedBy', 'multi-user.target']);
    });

    it('runs /opt/nestcd/bin/nestcd as Type=simple under a dedicated user, reading /etc/default/nestcd', () => {
      const [binary, ...args] = shellSplit(one('ExecStart'));
      expect(binary).toBe('/opt/nestcd/bin/nestcd');
      expect(one('Type')).toBe('simple'); // nestcd sends no sd_notify, so notify would never become ready
      expect(one('EnvironmentFile')).toBe('-/etc/default/nestcd');
      expect(one('Restart')).toBe('on-failure');
      expect(one('LimitNOFILE')).toBe('40000');
      expect(one('User')).toMatch(/^[a-z_][a-z0-9_-]*$/);
      expect(one('User')).not.toBe('root');
      // any flags on ExecStart and Environment= settings parse as well
      const environment: Record<string, string> = {};
      for (const e of service.get('Environment') ?? []) for (const kv of shellSplit(e)) environment[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
      expect(checkMember('nestcd.service', args, environment).problems).toEqual([]);
    });

    it('hardening leaves nestcd working: its data dir writable, and no W^X for V8', () => {
      if (service.get('ProtectSystem')?.[0] === 'strict' || service.get('ProtectSystem')?.[0] === 'full') {
        const writable = [...(service.get('ReadWritePaths') ?? []), ...(service.get('StateDirectory') ?? []).map((d) => `/var/lib/${d}`)];
        expect(writable).toContain('/var/lib/nestcd');
      }
      expect(service.get('MemoryDenyWriteExecute')?.[0] ?? 'false').not.toMatch(/^(true|yes|1|on)$/);
      const families = (service.get('RestrictAddressFamilies') ?? ['AF_INET AF_INET6']).join(' ');
      expect(families).toMatch(/AF_INET\b/);
      expect(families).toMatch(/AF_INET6/);
    });
  });

  describe('the checks have teeth', () => {
    const base = read('docker-compose.yaml');

    it('rejects a compose member with a misspelled flag', () => {
      const broken = base.replace('--initial-cluster-token=nestcd-compose-cluster', '--initial-cluster-tokn=nestcd-compose-cluster');
      expect(broken).not.toBe(base);
      expect(checkCompose(broken, image).problems).toEqual([expect.stringMatching(/service etcd2: flag provided but not defined: --initial-cluster-tokn/)]);
    });

    it('rejects a compose member with a misspelled ETCD_* variable or an invalid value', () => {
      const misspelled = base.replace('ETCD_ELECTION_TIMEOUT:', 'ETCD_ELECTON_TIMEOUT:');
      expect(checkCompose(misspelled, image).problems).toEqual([expect.stringMatching(/service etcd3: unrecognized environment variable ETCD_ELECTON_TIMEOUT/)]);
      const invalid = base.replace('ETCD_INITIAL_CLUSTER_STATE: new', 'ETCD_INITIAL_CLUSTER_STATE: fresh');
      expect(checkCompose(invalid, image).problems).toEqual([expect.stringMatching(/service etcd3: invalid configuration: --initial-cluster-state/)]);
    });

    it('rejects members that disagree on the cluster', () => {
      const disagree = base.replace('--initial-cluster=etcd1=http://etcd1:2380,etcd2=http://etcd2:2380,etcd3=http://etcd3:2380',
        '--initial-cluster=etcd1=http://etcd1:2380,etcd2=http://etcd2:2380');
      expect(checkCompose(disagree, image).problems).toEqual(expect.arrayContaining([expect.stringMatching(/disagree on --initial-cluster/)]));
      const snippet = [
        'services:',
        '  a:',
        '    command: --name a --initial-cluster a=http://a:2380 --initial-advertise-peer-urls http://a:2380 --advertise-client-urls http://a:2379',
        '  b:',
        '    environment: [ETCD_NAME=a, "ETCD_INITIAL_CLUSTER=a=http://b:2380", ETCD_INITIAL_ADVERTISE_PEER_URLS=http://b:2380, ETCD_ADVERTISE_CLIENT_URLS=http://b:2379]',
      ].join('\n');
      const { problems } = checkCompose(snippet, image);
      expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(/names are not unique/), expect.stringMatching(/disagree on --initial-cluster/)]));
    });

    it('flags a flag that overrides a variable, and a variable left to the host', () => {
      const snippet = 'services:\n  x:\n    command: ["--name", "x"]\n    environment:\n      - ETCD_NAME=y\n      - ETCD_DATA_DIR\n';
      const { problems } = checkCompose(snippet, image);
      expect(problems).toEqual(expect.arrayContaining([
        expect.stringMatching(/ETCD_DATA_DIR has no value/),
        expect.stringMatching(/ignored environment variable ETCD_NAME since the flag is set/),
      ]));
    });

    it('rejects an EnvironmentFile with an unknown variable', () => {
      const { env } = parseEnvFile('ETCD_NAME=a\nETCD_INITIAL_CLUSTER=a=http://127.0.0.1:2380\nETCD_SNAPSHOTS_COUNT=5\n');
      expect(checkMember('env', [], env).problems).toEqual(['env: unrecognized environment variable ETCD_SNAPSHOTS_COUNT']);
    });

    it('splits string commands the way compose does', () => {
      expect(shellSplit(`--name a  --initial-cluster "a=http://x:1" --x='y z' \\$HOME`)).toEqual(['--name', 'a', '--initial-cluster', 'a=http://x:1', '--x=y z', '$HOME']);
    });
  });
});

// keep the deploy dir honest: everything the README documents is there
it('deploy/README.md documents each file', () => {
  const readme = read('README.md');
  for (const f of ['Dockerfile', 'Dockerfile.dockerignore', 'docker-compose.yaml', 'nestcd.service', 'nestcd.env']) {
    expect(readme).toContain(f);
    expect(existsSync(join(DEPLOY, f))).toBe(true);
  }
  expect(dirname(DEPLOY)).toBe(ROOT);
});
