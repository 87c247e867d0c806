import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from './parse';

const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const parsed = parseConfig(argv, env);
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`);
  return parsed;
};

describe('parseConfig', () => {
  it('defaults to a single member named default with its data in default.nestcd', () => {
    const { config } = run([]);
    expect(config.name).toBe('default');
    expect(config.dataDir).toBe('default.nestcd');
    expect(config.listenClientUrls).toEqual(['http://localhost:2379']);
    expect(config.initialCluster.get('default')).toEqual(['http://localhost:2380']);
    expect(config.maxRequestBytes).toBe(1572864);
    expect(config.maxTxnOps).toBe(128);
  });

  it('reads etcd flag spellings: --flag value, --flag=value, -flag value, bare and explicit booleans', () => {
    const { config } = run(['-name', 'n1', '--data-dir=/tmp/x', '--listen-client-urls', 'http://127.0.0.1:1,http://127.0.0.1:2',
      '--initial-cluster', 'n1=http://127.0.0.1:3', '--enable-v2', '-strict-reconfig-check=false', '--max-txn-ops', '7']);
    expect(config.name).toBe('n1');
    expect(config.dataDir).toBe('/tmp/x');
    expect(config.listenClientUrls).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    expect(config.enableV2).toBe(true);
    expect(config.strictReconfigCheck).toBe(false);
    expect(config.maxTxnOps).toBe(7);
  });

  it('reads ETCD_* variables and lets flags win over them', () => {
    const { config, warnings } = run(['--name', 'flag'], {
      ETCD_NAME: 'env', ETCD_DATA_DIR: '/data', ETCD_INITIAL_CLUSTER: 'flag=http://127.0.0.1:2380', ETCD_ENABLE_V2: 'true',
    });
    expect(config.name).toBe('flag');
    expect(config.dataDir).toBe('/data');
    expect(config.enableV2).toBe(true);
    expect(warnings).toContain('ignored environment variable ETCD_NAME since the flag is set');
  });

  it('takes the whole configuration from a YAML config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nestcd-config-'));
    const file = join(dir, 'etcd.yaml');
    writeFileSync(file, [
      'name: infra1', 'data-dir: /var/lib/etcd', "listen-client-urls: 'http://127.0.0.1:2379'",
      'initial-cluster: infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:2381', 'initial-cluster-state: new',
      'heartbeat-interval: 250', 'election-timeout: 2500', 'enable-v2: true',
    ].join('\n'));
    const { config } = run(['--config-file', file], { ETCD_NAME: 'ignored' });
    expect(config.name).toBe('infra1');
    expect(config.heartbeatInterval).toBe(250);
    expect(config.electionTimeout).toBe(2500);
    expect(config.enableV2).toBe(true);
    expect([...config.initialCluster.keys()]).toEqual(['infra1', 'infra2']);
  });

  it('answers --version and --help', () => {
    expect(parseConfig(['--version']).kind).toBe('version');
    expect(parseConfig(['-help']).kind).toBe('help');
  });

  it.each([
    [['--no-such-flag'], /flag provided but not defined: --no-such-flag/],
    [['--listen-client-urls', 'not a url'], /--listen-client-urls: must be a URL/],
    [['--max-txn-ops', 'many'], /--max-txn-ops/],
    [['--initial-cluster-state', 'maybe'], /--initial-cluster-state/],
    [['--enable-v2=perhaps'], /invalid boolean value "perhaps"/],
    [['--name', 'a', '--initial-cluster', 'b=http://127.0.0.1:2380'], /couldn't find local name "a"/],
    [['--initial-cluster', 'garbage'], /is not of the form name=/],
    [['stray'], /'stray' is not a valid flag/],
  ])('rejects %j with a clear message', (argv, message) => {
    expect(() => parseConfig(argv as string[], {})).toThrow(ConfigError);
    expect(() => parseConfig(argv as string[], {})).toThrow(message);
  });
});
