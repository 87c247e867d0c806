import fc from 'fast-check';
import { decodeCommand, encodeCommand } from './command-codec';
import { Command, Compare, CompareTarget, RequestOp, TxnRequest } from './types';

const bytes = fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a));
const rev = fc.integer({ min: -5, max: 2 ** 40 });
const lease = fc.bigInt({ min: 0n, max: (1n << 63n) - 1n });

const put = fc.record({ key: bytes, value: bytes, lease, prevKv: fc.boolean(), ignoreValue: fc.boolean(), ignoreLease: fc.boolean() });
const del = fc.record({ key: bytes, rangeEnd: bytes, prevKv: fc.boolean() });
const range = fc.record({
  key: bytes, rangeEnd: bytes, limit: rev, revision: rev, sortOrder: fc.integer({ min: 0, max: 2 }), sortTarget: fc.integer({ min: 0, max: 4 }),
  serializable: fc.boolean(), keysOnly: fc.boolean(), countOnly: fc.boolean(),
  minModRevision: rev, maxModRevision: rev, minCreateRevision: rev, maxCreateRevision: rev,
});
const compare: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({ result: fc.integer({ min: 0, max: 3 }), target: fc.constant(CompareTarget.VERSION), key: bytes, rangeEnd: bytes, version: rev }),
  fc.record({ result: fc.integer({ min: 0, max: 3 }), target: fc.constant(CompareTarget.CREATE), key: bytes, rangeEnd: bytes, createRevision: rev }),
  fc.record({ result: fc.integer({ min: 0, max: 3 }), target: fc.constant(CompareTarget.MOD), key: bytes, rangeEnd: bytes, modRevision: rev }),
  fc.record({ result: fc.integer({ min: 0, max: 3 }), target: fc.constant(CompareTarget.VALUE), key: bytes, rangeEnd: bytes, value: bytes }),
  fc.record({ result: fc.integer({ min: 0, max: 3 }), target: fc.constant(CompareTarget.LEASE), key: bytes, rangeEnd: bytes, lease }),
);
const { txn } = fc.letrec<{ txn: TxnRequest; op: RequestOp }>((tie) => ({
  op: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    range.map((r) => ({ requestRange: r })),
    put.map((p) => ({ requestPut: p })),
    del.map((d) => ({ requestDeleteRange: d })),
    tie('txn').map((t) => ({ requestTxn: t as TxnRequest })),
  ),
  txn: fc.record({
    compare: fc.array(compare, { maxLength: 3 }),
    success: fc.array(tie('op') as fc.Arbitrary<RequestOp>, { maxLength: 3 }),
    failure: fc.array(tie('op') as fc.Arbitrary<RequestOp>, { maxLength: 3 }),
  }),
}));
const command: fc.Arbitrary<Command> = fc.oneof(
  put.map((p) => ({ put: p })),
  del.map((d) => ({ deleteRange: d })),
  txn.map((t) => ({ txn: t })),
  fc.record({ revision: rev, physical: fc.boolean() }).map((c) => ({ compaction: c })),
  fc.record({ id: lease, ttl: fc.integer({ min: -10, max: 9_000_000_000 }) }).map((g) => ({ leaseGrant: g })),
  lease.map((id) => ({ leaseRevoke: { id } })),
);

describe('command codec', () => {
  it('decodes exactly what it encoded, for every command shape', () => {
    fc.assert(fc.property(command, (cmd) => {
      expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
    }), { numRuns: 2000 });
  });

  it('refuses truncated or unknown input with an error instead of a wrong command', () => {
    const enc = encodeCommand({ put: { key: Buffer.from('k'), value: Buffer.from('value'), lease: 7n } });
    for (let cut = 0; cut < enc.length; cut++) expect(() => decodeCommand(enc.subarray(0, cut))).toThrow();
    expect(() => decodeCommand(Buffer.from([99]))).toThrow();
  });
});
