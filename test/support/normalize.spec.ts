import { normalize, parseTable } from './normalize';

describe('compat normalize()', () => {
  it('masks clientv3 log timestamps, client UUIDs and ports but keeps the gRPC error', () => {
    const line =
      '{"level":"warn","ts":"2026-11-24T01:04:12.439Z","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"endpoint://client-70f95737-beb3-4eb9-babf-527a7ef3f1a1/127.0.0.1:23791","attempt":0,"error":"rpc error: code = InvalidArgument desc = etcdserver: key is not provided"}';
    expect(normalize(line)).toBe(
      '{"level":"warn","ts":"<TS>","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"endpoint://client-<UUID>/127.0.0.1:<PORT>","attempt":0,"error":"rpc error: code = InvalidArgument desc = etcdserver: key is not provided"}',
    );
  });

  it('masks IDs in json/fields/simple output, keeps revisions and zero leases', () => {
    expect(
      normalize('{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":3,"raft_term":2},"kvs":[{"key":"YQ==","lease":7587}]}'),
    ).toBe('{"header":{"cluster_id":"<ID>","member_id":"<ID>","revision":3,"raft_term":2},"kvs":[{"key":"YQ==","lease":"<ID>"}]}');
    expect(normalize('"Lease" : 0\n"MemberID" : 42\n')).toBe('"Lease" : 0\n"MemberID" : <ID>\n');
    expect(normalize('lease 390da20b14ec2d0d granted with TTL(10s)\n')).toBe('lease <HEX> granted with TTL(10s)\n');
    expect(normalize('mylock/694d7d0b1f\n\n', { lockNames: ['mylock'] })).toBe('mylock/<LEASE>\n\n');
    // member IDs are printed unpadded by `member list`
    expect(normalize('dae9bbc11dd390d, started, ref, http://127.0.0.1:1, http://127.0.0.1:2, false\n')).toBe(
      '<ID>, started, ref, http://127.0.0.1:<PORT>, http://127.0.0.1:<PORT>, false\n',
    );
  });

  it('masks durations, remaining TTL and endpoint status volatile columns', () => {
    expect(normalize('http://127.0.0.1:1 is healthy: successfully committed proposal: took = 5.146281ms\n')).toBe(
      'http://127.0.0.1:<PORT> is healthy: successfully committed proposal: took = <DURATION>\n',
    );
    expect(normalize('lease 0000000000001234 granted with TTL(100s), remaining(99s)')).toBe(
      'lease <HEX> granted with TTL(100s), remaining(<TTL>s)',
    );
    expect(normalize('http://127.0.0.1:23791, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 8, 8, \n')).toBe(
      'http://127.0.0.1:<PORT>, <ID>, <VERSION>, <DBSIZE>, true, false, 2, <INDEX>, <INDEX>, \n',
    );
    expect(
      normalize('http://127.0.0.1:23791, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 8, 8, \n', { maskRaftTerm: true }),
    ).toBe('http://127.0.0.1:<PORT>, <ID>, <VERSION>, <DBSIZE>, true, false, <TERM>, <INDEX>, <INDEX>, \n');
  });

  it('re-renders tables without column padding and masks volatile columns', () => {
    const table = [
      '+------------------------+------------------+---------+---------+-----------+',
      '|        ENDPOINT        |        ID        | VERSION | DB SIZE | IS LEADER |',
      '+------------------------+------------------+---------+---------+-----------+',
      '| http://127.0.0.1:23791 | bdae9bbc11dd390d |  3.4.23 |   20 kB |      true |',
      '+------------------------+------------------+---------+---------+-----------+',
      '',
    ].join('\n');
    expect(normalize(table)).toBe(
      [
        '+---+',
        '| ENDPOINT | ID | VERSION | DB SIZE | IS LEADER |',
        '+---+',
        '| http://127.0.0.1:<PORT> | <ID> | <VERSION> | <DBSIZE> | true |',
        '+---+',
        '',
      ].join('\n'),
    );
    expect(parseTable(table)).toEqual([
      ['ENDPOINT', 'ID', 'VERSION', 'DB SIZE', 'IS LEADER'],
      ['http://127.0.0.1:23791', 'bdae9bbc11dd390d', '3.4.23', '20 kB', 'true'],
    ]);
  });
});
