import { ServerMetrics } from './metrics';

const handled = async (m: ServerMetrics): Promise<Record<string, number>> => {
  const out: Record<string, number> = {};
  for (const v of (await m.grpcHandled.get()).values) out[`${v.labels.grpc_method} ${v.labels.grpc_code}`] = v.value;
  return out;
};

describe('grpc_server_handled_total', () => {
  it('counts calls per label set as they finish, and keeps counting across scrapes', async () => {
    const m = new ServerMetrics();
    const labels = (method: string, code: string) => ({ grpc_type: 'unary', grpc_service: 'etcdserverpb.KV', grpc_method: method, grpc_code: code });
    const putOk = m.handledCount(labels('Put', 'OK'));
    const rangeOk = m.handledCount(labels('Range', 'OK'));
    const putBad = m.handledCount(labels('Put', 'InvalidArgument'));
    for (let i = 0; i < 5; i++) putOk.n++;
    rangeOk.n++;
    expect(await handled(m)).toEqual({ 'Put OK': 5, 'Range OK': 1 });
    putOk.n += 2;
    putBad.n++;
    expect(await handled(m)).toEqual({ 'Put OK': 7, 'Range OK': 1, 'Put InvalidArgument': 1 });
    const page = await m.registry.metrics();
    expect(page).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"} 7');
  });
});
