import { Codec, endField } from './codec';
import { Namespace } from './namespace';

describe('Codec', () => {
  const codec = new Codec(new Namespace(undefined));

  it('never sends an empty range_end (etcd reads a present empty one as "every key >= key")', () => {
    expect(endField(undefined)).toEqual({});
    expect(endField(Buffer.alloc(0))).toEqual({});
    expect('rangeEnd' in codec.rangeRequest({ key: Buffer.from('k') })).toBe(false);
    expect('rangeEnd' in codec.deleteRequest({ key: Buffer.from('k'), rangeEnd: Buffer.alloc(0) })).toBe(false);
    expect(codec.rangeRequest({ key: Buffer.from('a'), rangeEnd: Buffer.from([0]) }).rangeEnd).toEqual(Buffer.from([0]));
  });

  it('encodes compares by target and decodes 64-bit IDs and revisions', () => {
    expect(codec.compare({ key: Buffer.from('k'), target: 'lease', result: 'not_equal', value: 0x7fffffffffffffffn })).toMatchObject({ target: 4, result: 3, lease: '9223372036854775807' });
    expect(codec.compare({ key: Buffer.from('k'), target: 'mod', result: 'less', value: 7 })).toMatchObject({ target: 2, result: 2, modRevision: '7' });
    const kv = codec.kv({ key: Buffer.from('k'), value: Buffer.from('v'), createRevision: '3', modRevision: '9', version: '2', lease: '9223372036854775807' });
    expect(kv).toEqual({ key: Buffer.from('k'), value: Buffer.from('v'), createRevision: 3, modRevision: 9, version: 2, lease: 0x7fffffffffffffffn });
  });

  it('maps txn ops both ways', () => {
    const req = codec.txnRequest({ compare: [], success: [{ put: { key: Buffer.from('a'), value: Buffer.from('1') } }, { deleteRange: { key: Buffer.from('b') } }], failure: [{ range: { key: Buffer.from('c') } }] });
    expect(Object.keys(req.success[0])).toEqual(['requestPut']);
    expect(Object.keys(req.success[1])).toEqual(['requestDeleteRange']);
    expect(Object.keys(req.failure[0])).toEqual(['requestRange']);
    const res = codec.txnResponse({ header: { revision: '5' }, succeeded: true, responses: [{ responsePut: { header: { revision: '5' } } }, { responseDeleteRange: { deleted: '2', prevKvs: [] } }] });
    expect(res.header.revision).toBe(5);
    expect(res.responses[1]).toEqual({ deleteRange: { header: expect.anything(), deleted: 2, prevKvs: [] } });
  });
});
