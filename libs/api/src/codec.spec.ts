import fc from 'fast-check';
import { headerOut, kvOut, putRequestIn, putRequestSize, putResponseOut, putResponseSerializer, requestSize, toBigInt } from './codec';
import { serviceDefinition } from './proto';
import { messageType, toProtoJson } from './gateway/proto-json';

describe('codec hot paths', () => {
  it('putRequestSize equals requestSize for every put', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.uint8Array({ maxLength: 2000 }),
        fc.oneof(fc.constant('0'), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String)),
        fc.boolean(),
        (key, value, lease, prevKv) => {
          const req = putRequestIn({ key: Buffer.from(key), value: Buffer.from(value), lease, prevKv, ignoreValue: false, ignoreLease: false });
          expect(putRequestSize(req)).toBe(requestSize(req));
        },
      ),
    );
  });

  it('toBigInt reads zero in every spelling and other values exactly', () => {
    for (const zero of ['0', 0, '', undefined, null]) expect(toBigInt(zero)).toBe(0n);
    expect(toBigInt('-1')).toBe(-1n);
    expect(toBigInt('18446744073709551615')).toBe(2n ** 64n - 1n);
    expect(() => toBigInt('x')).toThrow('is not an integer');
  });

  describe('response header IDs (sent as cached Longs)', () => {
    const ids = [1n, 0x8e9e05c52164694dn, 2n ** 64n - 1n, 2n ** 63n, 0xffffffffn, 2n ** 32n];

    it('encode on the gRPC wire to the same uint64 as the bigint', () => {
      const serialize = serviceDefinition('KV').Put.responseSerialize;
      const PutResponse = messageType('PutResponse');
      for (const id of ids) {
        const bytes = serialize({ header: headerOut({ clusterId: id, memberId: id ^ 5n, revision: 7, raftTerm: 3 }), prevKv: null });
        const decoded = PutResponse.toObject(PutResponse.decode(bytes), { longs: String }) as { header: Record<string, string> };
        expect(decoded.header).toEqual({ cluster_id: id.toString(), member_id: (id ^ 5n).toString(), revision: '7', raft_term: '3' });
      }
    });

    it('render as decimal strings in the JSON gateway, and a zero ID is left out', () => {
      const type = messageType('ResponseHeader');
      expect(toProtoJson(type, headerOut({ clusterId: 2n ** 64n - 1n, memberId: 12n, revision: 1, raftTerm: 2 }))).toEqual({
        cluster_id: '18446744073709551615', member_id: '12', revision: '1', raft_term: '2',
      });
      expect(toProtoJson(type, headerOut({ clusterId: 0n, memberId: 0n, revision: 5, raftTerm: 0 }))).toEqual({ revision: '5' });
    });
  });

  describe('the hand-written PutResponse encoder', () => {
    const general = serviceDefinition('KV').Put.responseSerialize as (value: unknown) => Buffer;
    const serialize = putResponseSerializer(general);
    const u64 = fc.oneof(fc.constantFrom(0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    const count = fc.oneof(fc.constantFrom(0, 1, 127, 128, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.nat(), fc.maxSafeNat());

    it('writes the same bytes as protobufjs for every header', () => {
      fc.assert(
        fc.property(u64, u64, count, count, (clusterId, memberId, revision, raftTerm) => {
          const value = putResponseOut({ revision }, headerOut({ clusterId, memberId, revision, raftTerm }));
          expect(serialize(value).toString('hex')).toBe(general(value).toString('hex'));
        }),
        { numRuns: 2000 },
      );
    });

    it('leaves a response with prev_kv, or a header it does not know, to protobufjs', () => {
      const header = headerOut({ clusterId: 9n, memberId: 8n, revision: 5, raftTerm: 2 });
      const prevKv = kvOut({ key: Buffer.from('k'), value: Buffer.from('v'), createRevision: 2, modRevision: 4, version: 3, lease: 0n });
      const withPrev = putResponseOut({ revision: 5, prevKv: { key: Buffer.from('k'), value: Buffer.from('v'), createRevision: 2, modRevision: 4, version: 3, lease: 0n } }, header);
      expect(withPrev.prevKv).toEqual(prevKv);
      expect(serialize(withPrev).equals(general(withPrev))).toBe(true);
      const PutResponse = messageType('PutResponse');
      const decoded = PutResponse.toObject(PutResponse.decode(serialize(withPrev)), { longs: String }) as { prev_kv: { value: Buffer } };
      expect(decoded.prev_kv.value.toString()).toBe('v');
      const stringIds = { header: { ...header, clusterId: '9', memberId: '8' }, prevKv: null };
      expect(serialize(stringIds).equals(general(stringIds))).toBe(true);
    });
  });
});
