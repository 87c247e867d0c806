/**
 * nestcdctl's Go-compatible formatting and its extras, without servers. The expected strings are what etcdctl
 * 3.4 (Go) prints for the same values.
 */
import { goDuration, goJson, goParseInt, goQuote, humanBytes, oe, parseGoDuration, renderTable } from '../../apps/nestcdctl/src/format';
import { bashCompletion, perfStats, perfVerdict, renderTree, zshCompletion } from '../../apps/nestcdctl/src/commands/extras';
import { argify } from '../../apps/nestcdctl/src/cli';

process.env.NESTCDCTL_NO_MAIN = '1';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { buildProgram, normalizeArgv } = require('../../apps/nestcdctl/src/main') as typeof import('../../apps/nestcdctl/src/main');

describe('Go formatting', () => {
  it('%q quotes like strconv.Quote', () => {
    expect(goQuote('a "b"\t\n\\')).toBe('"a \\"b\\"\\t\\n\\\\"');
    expect(goQuote(Buffer.from([0, 0x7f, 0xff]))).toBe('"\\x00\\x7f\\xff"');
    expect(goQuote('héllo ✓')).toBe('"héllo ✓"');
  });

  it('humanize.Bytes rounds like go-humanize (half to even at 0 decimals)', () => {
    expect(humanBytes(5)).toBe('5 B');
    expect(humanBytes(20480)).toBe('20 kB');
    expect(humanBytes(24576)).toBe('25 kB');
    expect(humanBytes(1500)).toBe('1.5 kB');
    expect(humanBytes(2_100_000)).toBe('2.1 MB');
  });

  it('time.Duration String and ParseDuration', () => {
    expect(goDuration(3_605_120)).toBe('3.60512ms');
    expect(goDuration(850_000)).toBe('850µs');
    expect(goDuration(1_500_000_000)).toBe('1.5s');
    expect(goDuration(61_000_000_000)).toBe('1m1s');
    expect(goDuration(999)).toBe('999ns');
    expect(parseGoDuration('2s')).toBe(2000);
    expect(parseGoDuration('1m30s')).toBe(90000);
    expect(parseGoDuration('300ms')).toBe(300);
    expect(() => parseGoDuration('5')).toThrow('time: missing unit in duration "5"');
    expect(() => parseGoDuration('abc')).toThrow('time: invalid duration "abc"');
  });

  it('strconv.ParseInt errors', () => {
    expect(goParseInt('ff', 16)).toBe(255n);
    expect(() => goParseInt('zz', 16)).toThrow('strconv.ParseInt: parsing "zz": invalid syntax');
    expect(() => goParseInt('ffffffffffffffffff', 16)).toThrow('value out of range');
    expect(() => goParseInt('-1', 16, true)).toThrow('strconv.ParseUint: parsing "-1": invalid syntax');
  });

  it('encoding/json with big IDs, base64 bytes and omitempty', () => {
    expect(goJson({ id: 15260942537104973159n, key: Buffer.from('k'), n: oe(0), s: '<&>' })).toBe(
      '{"id":15260942537104973159,"key":"aw==","s":"\\u003c\\u0026\\u003e"}',
    );
  });

  it('tablewriter: centred upper-case header, right-aligned cells', () => {
    expect(renderTable(['Endpoint', 'Hash'], [['127.0.0.1:23790', '1521296949']])).toBe(
      '+-----------------+------------+\n' +
        '|    ENDPOINT     |    HASH    |\n' +
        '+-----------------+------------+\n' +
        '| 127.0.0.1:23790 | 1521296949 |\n' +
        '+-----------------+------------+\n',
    );
  });
});

describe('argv handling', () => {
  it("pflag's --bool=true|false become commander flags; words after -- are left alone", () => {
    expect(normalizeArgv(['get', 'k', '--prefix=true', '--keys-only=false', '--limit=5', '--', 'x', '--prefix=false'])).toEqual([
      'get', 'k', '--prefix', '--limit=5', '--', 'x', '--prefix=false',
    ]);
  });

  it('txn lines split on spaces, honouring quotes', () => {
    expect(argify('put "k 1" "v \\"2\\"" --prev-kv')).toEqual(['put', 'k 1', 'v "2"', '--prev-kv']);
  });
});

describe('nestcdctl extras', () => {
  it('tree shows keys split on "/" with values at the leaves', () => {
    const tree = renderTree(
      [
        { key: '/app/db/host', value: 'h' },
        { key: '/app/db/port', value: '5432' },
        { key: '/app/name', value: 'x' },
        { key: '/z', value: '1' },
      ],
      '',
    );
    expect(tree).toBe(
      '/\n' +
        '├── app/\n' +
        '│   ├── db/\n' +
        '│   │   ├── host = h\n' +
        '│   │   └── port = 5432\n' +
        '│   └── name = x\n' +
        '└── z = 1\n',
    );
  });

  it('check perf passes and fails by etcdctl\'s rules', () => {
    const good = perfStats(Array(9000).fill(0.01), 0, 60);
    expect(perfVerdict(good, 150)).toEqual({
      ok: true,
      lines: ['PASS: Throughput is 151 writes/s', 'PASS: Slowest request took 0.010000s', 'PASS: Stddev is 0.000000s', 'PASS'],
    });
    const slow = perfStats([...Array(100).fill(0.01), 0.9], 1, 60);
    const v = perfVerdict(slow, 150);
    expect(v.ok).toBe(false);
    expect(v.lines).toEqual([
      'FAIL: too many errors',
      'FAIL: Throughput too low: 2 writes/s',
      'FAIL: Slowest request took too long: 0.900000s',
      expect.stringMatching(/^PASS: Stddev is 0\.08\d+s$/),
      'FAIL',
    ]);
  });

  it('completion scripts list every command, subcommand and flag', () => {
    const { program } = buildProgram();
    const bash = bashCompletion(program);
    expect(bash).toContain('complete -F _nestcdctl nestcdctl');
    expect(bash).toMatch(/"lease"\) words="grant revoke timetolive list keep-alive/);
    expect(bash).toMatch(/"get"\) words="--consistency --order --sort-by --limit --prefix --from-key --rev --keys-only --print-value-only/);
    expect(zshCompletion(program)).toMatch(/^#compdef nestcdctl\n/);
  });
});
