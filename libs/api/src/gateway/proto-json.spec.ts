import { describeZodError, messageType, requestSchema, toProtoJson } from './proto-json';

const parse = (type: string, json: unknown) => requestSchema(messageType(type)).safeParse(json);

describe('proto3 JSON for the gateway', () => {
  it('turns a JSON request into what proto-loader hands a gRPC handler', () => {
    const r = parse('RangeRequest', { key: 'YQ==', range_end: 'Yg==', limit: '10', sortOrder: 'DESCEND', keys_only: true });
    expect(r.success).toBe(true);
    expect(r.data).toMatchObject({
      key: Buffer.from('a'), rangeEnd: Buffer.from('b'), limit: '10', sortOrder: 2, sortTarget: 0, keysOnly: true, serializable: false, revision: '0',
    });
  });

  it('names the set case of a oneof and fills nested messages', () => {
    const r = parse('TxnRequest', { success: [{ request_put: { key: 'YQ==' } }], compare: [{ key: 'YQ==', target: 'MOD', mod_revision: 3 }] });
    expect(r.success).toBe(true);
    const data = r.data as any;
    expect(data.success[0]).toMatchObject({ request: 'requestPut', requestPut: { key: Buffer.from('a'), value: Buffer.alloc(0) } });
    expect(data.compare[0]).toMatchObject({ targetUnion: 'modRevision', modRevision: '3', target: 2 });
  });

  it('says which field is wrong', () => {
    const bad = (type: string, json: unknown) => {
      const r = parse(type, json);
      expect(r.success).toBe(false);
      return describeZodError(r.error!);
    };
    expect(bad('RangeRequest', { key: 'not base64!' })).toBe('key: illegal base64 data');
    expect(bad('RangeRequest', { key: 'YQ==', limit: 1.5 })).toMatch(/^limit: /);
    expect(bad('RangeRequest', { key: 'YQ==', revision: '99999999999999999999999' })).toBe('revision: out of the 64-bit range');
    expect(bad('PutRequest', { key: 'YQ==', prev_kv: 'yes' })).toMatch(/^prev_kv: /);
    expect(bad('TxnRequest', { success: [{ request_put: { key: 5 } }] })).toMatch(/^success\.0\.request_put\.key: /);
    expect(bad('AlarmRequest', { action: 'LOUDER' })).toBe('unknown value "LOUDER" for enum etcdserverpb.AlarmRequest_AlarmAction');
  });

  it('renders responses as grpc-gateway does: .proto names, strings for int64, base64, defaults left out', () => {
    const json = toProtoJson(messageType('RangeResponse'), {
      header: { clusterId: '1', memberId: '2', revision: 5, raftTerm: 2 },
      kvs: [{ key: Buffer.from('a'), createRevision: 2, modRevision: 2, version: 1, value: Buffer.alloc(0), lease: '0' }],
      more: false,
      count: 1,
    });
    expect(json).toEqual({
      header: { cluster_id: '1', member_id: '2', revision: '5', raft_term: '2' },
      kvs: [{ key: 'YQ==', create_revision: '2', mod_revision: '2', version: '1' }],
      count: '1',
    });
    expect(toProtoJson(messageType('WatchResponse'), { header: { revision: 1 }, events: [{ type: 1, kv: { key: Buffer.from('a') } }] }))
      .toEqual({ header: { revision: '1' }, events: [{ type: 'DELETE', kv: { key: 'YQ==' } }] });
    expect(toProtoJson(messageType('HashResponse'), { hash: 4294967295 })).toEqual({ hash: 4294967295 });
  });
});
