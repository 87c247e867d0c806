import type { EtcdServer } from '@nestcd/server';
import { CLUSTER_VERSION, SERVER_VERSION } from '@nestcd/server';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { V3Gateway } from './gateway/v3-gateway';

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
};

/**
 * The HTTP/1.1 side of the client port (the front door hands it every connection that is not HTTP/2):
 * /metrics, /health and /version, as etcd serves them next to gRPC.
 */
export class HttpGateway {
  private readonly httpServer: http.Server;
  private readonly routes = new Map<string, Route>();
  private readonly v3: V3Gateway;

  constructor(private readonly server: EtcdServer, options: { log?: (msg: string) => void } = {}) {
    this.v3 = new V3Gateway(server, options.log);
    this.httpServer = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => void this.dispatch(req, res));
    this.route('GET /metrics', async (_req, res) => {
      const registry = this.server.metrics.registry;
      const body = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType });
      res.end(body);
    });
    this.route('GET /health', async (_req, res) => {
      const healthy = this.server.proposer.leader !== 0n && this.server.status().errors.length === 0;
      json(res, healthy ? 200 : 503, { health: healthy ? 'true' : 'false' });
    });
    this.route('GET /version', (_req, res) => json(res, 200, { etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION }));
  }

  route(methodAndPath: string, handler: Route): void {
    this.routes.set(methodAndPath, handler);
  }

  /** The front door's HTTP/1 hook: replays the bytes it already read, then lets node's parser take over. */
  readonly accept = (socket: Socket, firstBytes: Buffer): void => {
    socket.unshift(firstBytes);
    this.httpServer.emit('connection', socket);
    socket.resume();
  };

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path.startsWith('/v3') && this.v3.handle(req, res, path)) return;
    const handler = this.routes.get(`${req.method} ${path}`);
    try {
      if (handler) await handler(req, res);
      else json(res, 404, { message: `404 page not found: ${req.method} ${path}` });
    } catch (err) {
      if (!res.headersSent) json(res, 500, { message: (err as Error).message });
      else res.destroy();
    }
  }

  close(): void {
    this.httpServer.closeAllConnections();
    this.httpServer.close();
  }
}
