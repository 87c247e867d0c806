import { parseConfig } from '@nestcd/config';
import { EtcdError } from '@nestcd/errors';
import { AlarmAction, AlarmType, EtcdServer, openMember } from '.';

const put = (server: EtcdServer, key: string, bytes: number) =>
  server.put({ key: Buffer.from(key), value: Buffer.alloc(bytes, 'x') });

describe('space quota and the NOSPACE alarm', () => {
  let server: EtcdServer;

  beforeEach(async () => {
    const parsed = parseConfig(['--quota-backend-bytes', String(64 * 1024)], {});
    if (parsed.kind !== 'run') throw new Error('config');
    server = await openMember(parsed.config, { inMemory: true });
    await server.start();
  });

  afterEach(() => server.stop());

  it('raises NOSPACE past the quota, refuses writes but serves reads and deletes, until compact + defrag + disarm', async () => {
    for (let i = 0; i < 8; i++) await put(server, `k${i}`, 4096);
    const refused = await put(server, 'big', 40 * 1024).catch((e: EtcdError) => e);
    expect(refused).toBeInstanceOf(EtcdError);
    expect((refused as EtcdError).message).toBe('etcdserver: mvcc: database space exceeded');
    expect(server.alarmList()).toEqual([{ memberId: server.memberId, alarm: AlarmType.NOSPACE }]);
    expect(server.status().errors).toEqual([`memberID:${server.memberId} alarm:NOSPACE `]);
    // Small writes are refused too while the alarm stands; reads and deletes still work.
    await expect(put(server, 'small', 1)).rejects.toThrow('etcdserver: mvcc: database space exceeded');
    await expect(server.leaseGrant(10, 0n)).rejects.toThrow('etcdserver: mvcc: database space exceeded');
    expect((await server.range({ key: Buffer.from('k0') })).kvs).toHaveLength(1);
    const del = await server.deleteRange({ key: Buffer.from('k'), rangeEnd: Buffer.from('l') });
    expect(del.deleted).toBe(8);
    await server.compact({ revision: server.store.currentRevision });
    // Freed space counts only after defragment, as in etcd; then disarm lets writes through.
    expect(server.status().dbSize).toBeGreaterThan(server.status().dbSizeInUse);
    await server.defragment();
    expect(server.status().dbSize).toBe(server.status().dbSizeInUse);
    await expect(put(server, 'small', 1)).rejects.toThrow('database space exceeded');
    await server.alarm(AlarmAction.DEACTIVATE, server.memberId, AlarmType.NOSPACE);
    expect(server.alarmList()).toEqual([]);
    await put(server, 'small', 1);
    expect((await server.range({ key: Buffer.from('small') })).kvs).toHaveLength(1);
  });
});
