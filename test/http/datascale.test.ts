// `etcdctl check datascale` reads process_resident_memory_bytes from /metrics before and after a write load.
import { etcdctl, ServerHandle, startNestcd } from '../support';

jest.setTimeout(240_000);

describe('etcdctl check datascale against nestcd', () => {
  let server: ServerHandle;
  beforeAll(async () => {
    server = await startNestcd();
  }, 60_000);
  afterAll(() => server?.stop());

  it('runs the small load to the end and reports the memory it read from /metrics', async () => {
    const r = await etcdctl(server.endpoint, ['check', 'datascale', '--load=s', '--auto-compact', '--auto-defrag'], { timeoutMs: 200_000 });
    expect(r.timedOut).toBe(false);
    expect(r.stdout).toMatch(/PASS: Approximate system memory used : \d+(\.\d+)? MB\./);
    expect(r.code).toBe(0);
  });
});
