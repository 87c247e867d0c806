/**
 * `etcdctl txn` reading compares / success ops / failure ops from stdin (each
 * section ends with a blank line), side by side against etcd 3.4.23 and nestcd.
 */
import { useCompatServers } from '../support/compat';

const b64 = (s: string) => Buffer.from(s).toString('base64');
/** Build txn stdin: sections separated (and terminated) by blank lines. */
const txn = (compares: string[], success: string[], failure: string[]) =>
  [compares, success, failure].map((sec) => sec.map((l) => `${l}\n`).join('') + '\n').join('');

describe('compat: txn', () => {
  const cmp = useCompatServers();

  const casTxn = txn(['value("t/a") = "1"'], ['put t/a "2"', 'get t/a'], ['put t/a "x"']);

  beforeAll(async () => {
    await cmp.run(['put', 't/a', '1']); // revision 2
  });

  it('success branch: prints SUCCESS, then each response separated by blank lines; the range sees the earlier put', async () => {
    const r = await cmp.run(['txn'], { stdin: casTxn });
    expect(r).toMatchObject({ code: 0, stdout: 'SUCCESS\n\nOK\n\nt/a\n2\n', stderr: '' });
  });

  it('failure branch: prints FAILURE and the failure responses', async () => {
    const r = await cmp.run(['txn'], { stdin: casTxn });
    expect(r).toMatchObject({ code: 0, stdout: 'FAILURE\n\nOK\n', stderr: '' });
    expect((await cmp.run(['get', 't/a'])).stdout).toBe('t/a\nx\n');
  });

  it('-w json failure: no "succeeded" field, put response header carries the new revision', async () => {
    const r = await cmp.run(['txn', '-w', 'json'], { stdin: casTxn });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^\{"header":\{"cluster_id":\d+,"member_id":\d+,"revision":5,"raft_term":2\},"responses":\[\{"Response":\{"ResponsePut":\{"header":\{"revision":5\}\}\}\}\]\}\n$/,
    );
  });

  it('-w json success with a range inside the txn', async () => {
    const r = await cmp.run(['txn', '-w', 'json'], {
      stdin: txn(['mod("t/a") > "0"', 'version("t/a") = "4"'], ['put t/b "new"', 'get t/ --prefix'], []),
    });
    const j = JSON.parse(r.stdout);
    expect(j.succeeded).toBe(true);
    expect(j.header.revision).toBe(6);
    expect(j.responses[0]).toEqual({ Response: { ResponsePut: { header: { revision: 6 } } } });
    expect(j.responses[1].Response.ResponseRange.kvs).toEqual([
      { key: b64('t/a'), create_revision: 2, mod_revision: 5, version: 4, value: b64('x') },
      { key: b64('t/b'), create_revision: 6, mod_revision: 6, version: 1, value: b64('new') },
    ]);
    expect(j.responses[1].Response.ResponseRange.count).toBe(2);
  });

  it('del inside a txn prints the deleted count', async () => {
    const r = await cmp.run(['txn'], {
      stdin: txn(['create("t/b") = "6"'], ['put t/c "a b"', 'del t/b', 'get t/ --prefix'], []),
    });
    expect(r.stdout).toBe('SUCCESS\n\nOK\n\n1\n\nt/a\nx\nt/c\na b\n');
  });

  it('compares with no ops: just SUCCESS / FAILURE', async () => {
    expect((await cmp.run(['txn'], { stdin: txn(['create("t/nope") = "0"'], [], []) })).stdout).toBe('SUCCESS\n');
    expect((await cmp.run(['txn'], { stdin: txn(['create("t/nope") != "0"'], [], []) })).stdout).toBe('FAILURE\n');
  });

  it('the same key written twice in one txn: etcdserver: duplicate key given in txn request (exit 1)', async () => {
    const r = await cmp.run(['txn'], { stdin: txn(['version("t/zz") = "0"'], ['put t/d 1', 'del t/d'], []) });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('"error":"rpc error: code = InvalidArgument desc = etcdserver: duplicate key given in txn request"');
    expect(r.stderr).toMatch(/\nError: etcdserver: duplicate key given in txn request\n$/);
  });

  it('put with an unknown lease inside a txn: etcdserver: requested lease not found', async () => {
    const r = await cmp.run(['txn'], { stdin: txn(['version("t/zz") = "0"'], ['put t/e x --lease=1234'], []) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/code = NotFound desc = etcdserver: requested lease not found.*\nError: etcdserver: requested lease not found\n$/s);
  });

  it('malformed comparison is a client-side error, exit 3 (ExitInvalidInput)', async () => {
    const r = await cmp.run(['txn'], { stdin: txn(['garbage'], [], []) });
    expect(r).toMatchObject({ code: 3, stdout: '', stderr: 'Error: malformed comparison: garbage\n' });
  });

  it('txn -i prints the interactive prompts on stdout', async () => {
    const r = await cmp.run(['txn', '-i'], { stdin: casTxn });
    expect(r.stdout).toBe(
      'compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nFAILURE\n\nOK\n',
    );
  });

  it('revisions advanced identically', async () => {
    const r = await cmp.run(['get', 't/', '--prefix', '-w', 'json']);
    expect(JSON.parse(r.stdout).header.revision).toBe(8);
  });
});
