import fc from 'fast-check';
import {
  encodeStateless,
  HeaderField,
  HpackDecoder,
  HpackError,
  huffmanDecode,
  huffmanEncode,
  isValidAuthority,
  normalizeAuthority,
} from './front-door-hpack';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (fields: HeaderField[]): Array<[string, string]> => fields.map((f) => [f.name, f.value]);

describe('HPACK decoder', () => {
  it('decodes the RFC 7541 C.3 requests (no Huffman), sharing the dynamic table across blocks', () => {
    const d = new HpackDecoder();
    expect(pairs(d.decode(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d')))).toEqual([
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'],
    ]);
    expect(d.tableSize).toBe(57);
    expect(pairs(d.decode(hex('8286 84be 5808 6e6f 2d63 6163 6865')))).toEqual([
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache'],
    ]);
    expect(d.tableSize).toBe(110);
    expect(pairs(d.decode(hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65')))).toEqual([
      [':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value'],
    ]);
    expect(d.tableSize).toBe(164);
  });

  it('decodes the RFC 7541 C.4 requests (Huffman)', () => {
    const d = new HpackDecoder();
    expect(pairs(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')))).toEqual([
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'],
    ]);
    expect(pairs(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')))).toContainEqual(['cache-control', 'no-cache']);
    expect(pairs(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')))).toEqual([
      [':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value'],
    ]);
    expect(d.tableSize).toBe(164);
  });

  it('evicts like RFC 7541 C.6 (256-byte table, Huffman responses)', () => {
    const d = new HpackDecoder(256);
    d.decode(hex('4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3'));
    expect(d.tableSize).toBe(222);
    expect(pairs(d.decode(hex('4883 640e ff c1 c0 bf')))).toEqual([
      [':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com'],
    ]);
    expect(d.tableSize).toBe(222);
    const third = d.decode(hex(
      '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ));
    expect(pairs(third)).toEqual([
      [':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'], ['location', 'https://www.example.com'],
      ['content-encoding', 'gzip'], ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
    ]);
    expect(d.tableSize).toBe(215);
    expect(d.tableLength).toBe(3);
  });

  it('decodes the header block grpc-go (etcdctl 3.4 endpoint status) sends', () => {
    const block = hex(
      '8386459760a924882d9dcb6571afa066a925a87510ac6e48d36a3f41909d29aee30c044eae05c0b86e044cbeff5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d833505b11f40899acac8b24d494f6a7f860bedbe075bb7408d25062d495875996ee5b1063d5f03332e34',
    );
    const fields = new HpackDecoder().decode(block);
    expect(fields).toContainEqual({ name: ':authority', value: 'http://127.0.0.1:12399' });
    expect(fields).toContainEqual({ name: ':path', value: '/etcdserverpb.Maintenance/Status' });
    expect(fields).toContainEqual({ name: 'te', value: 'trailers' });
  });

  it('honours dynamic table size updates at the start of a block only, within the limit', () => {
    const d = new HpackDecoder();
    d.decode(hex('418c f1e3 c2e5 f23a 6ba0 ab90 f4ff')); // :authority: www.example.com, incremental indexing
    expect(d.tableLength).toBe(1);
    expect(d.decode(hex('20')).length).toBe(0); // a size update to 0 empties the table
    d.decode(hex('3fe11f')); // ...and back to 4096, which is allowed
    expect(d.tableLength).toBe(0);
    expect(() => d.decode(hex('82 20'))).toThrow(HpackError);
    expect(() => d.decode(hex('3fe21f'))).toThrow(/over the limit/); // 4097
    expect(() => d.decode(hex('be'))).toThrow(/beyond the dynamic table/);
  });

  it('keeps never-indexed fields marked as such', () => {
    const fields = new HpackDecoder().decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'));
    expect(fields).toEqual([{ name: 'password', value: 'secret', neverIndex: true }]);
    expect(encodeStateless(fields)).toEqual(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'));
  });

  it('rejects malformed input', () => {
    const d = new HpackDecoder();
    expect(() => d.decode(hex('80'))).toThrow(/index 0/);
    expect(() => d.decode(hex('0f'))).toThrow(HpackError); // truncated integer
    expect(() => d.decode(hex('0005 6162'))).toThrow(/longer than/);
    expect(() => huffmanDecode(hex('ff ff ff ff'))).toThrow(HpackError); // EOS
    expect(() => huffmanDecode(hex('00'))).toThrow(/padding/); // '0' (00000) then 000 padding
    expect(() => d.decode(hex('0fffffffffff0f'))).toThrow(/overflow/);
  });
});

describe('Huffman coding', () => {
  it('matches RFC 7541 examples', () => {
    expect(huffmanEncode('www.example.com')).toEqual(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'));
    expect(huffmanEncode('no-cache')).toEqual(hex('a8eb 1064 9cbf'));
    expect(huffmanDecode(hex('25a8 49e9 5ba9 7d7f'))).toBe('custom-key');
  });

  it('round-trips any octet string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const s = Buffer.from(bytes).toString('latin1');
        expect(huffmanDecode(huffmanEncode(s))).toBe(s);
      }),
    );
  });
});

describe('stateless encoder', () => {
  it('round-trips through a decoder without touching its dynamic table', () => {
    const latin1 = (maxLength: number) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString('latin1'));
    const field = fc.record({
      name: fc.oneof(fc.constantFrom(':method', ':path', ':authority', 'content-type', 'te', 'user-agent', 'x-custom'), latin1(20)),
      value: fc.oneof(fc.constantFrom('POST', 'GET', 'http', '', 'trailers'), latin1(300)),
      neverIndex: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), (fields) => {
        const d = new HpackDecoder();
        const out = d.decode(encodeStateless(fields));
        expect(out.map((f) => [f.name, f.value, !!f.neverIndex])).toEqual(fields.map((f) => [f.name, f.value, f.neverIndex]));
        expect(d.tableLength).toBe(0);
      }),
    );
  });

  it('uses static indexes', () => {
    expect(encodeStateless([{ name: ':method', value: 'POST' }, { name: ':scheme', value: 'http' }])).toEqual(hex('8386'));
    expect(encodeStateless([{ name: ':authority', value: 'a:1' }])).toEqual(hex('01 03 613a31'));
  });
});

describe('authority', () => {
  it('accepts what nghttp2 accepts', () => {
    for (const ok of ['127.0.0.1:2379', '[::1]:2379', 'localhost', 'user@host:1', 'a%20b', '']) expect(isValidAuthority(ok)).toBe(true);
    for (const bad of ['http://127.0.0.1:2379', 'unix:///tmp/x', 'a b', 'host/path', 'h\u00e9']) expect(isValidAuthority(bad)).toBe(false);
  });

  it('repairs grpc-go passthrough targets', () => {
    expect(normalizeAuthority('http://127.0.0.1:12479', 'x:1')).toBe('127.0.0.1:12479');
    expect(normalizeAuthority('https://[::1]:2379/some/path?q#f', 'x:1')).toBe('[::1]:2379');
    expect(normalizeAuthority('127.0.0.1:2379/x', 'x:1')).toBe('127.0.0.1:2379');
    expect(normalizeAuthority('unix:///tmp/etcd.sock', '127.0.0.1:2379')).toBe('127.0.0.1:2379');
    expect(normalizeAuthority('http://a b', 'f:1')).toBe('f:1');
  });
});
