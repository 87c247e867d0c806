import type { EtcdServer } from '@nestcd/server';
import { CLUSTER_VERSION, SERVER_VERSION } from '@nestcd/server';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { V2Http } from './gateway/v2-http';
import { GATEWAY_HEADERS, V3Gateway } from './gateway/v3-gateway';

/** etcd's health check gives its range read this long. */
const HEALTH_TIMEOUT_MS = 5000;

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
};

/**
 * The HTTP/1.1 side of the client port (the front door hands it every connection that is not HTTP/2):
 * /metrics, /health and /version, the v3 JSON gateway and (with --enable-v2) the v2 API, as etcd serves them next to gRPC.
 */
export class HttpGateway {
  private readonly httpServer: http.Server;
  private readonly routes = new Map<string, Route>();
  private readonly v3: V3Gateway;
  private readonly v2?: V2Http;

  constructor(private readonly server: EtcdServer, options: { log?: (msg: string) => void } = {}) {
    this.v3 = new V3Gateway(server, options.log);
    if (server.config.enableV2) this.v2 = new V2Http(server);
    this.httpServer = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => void this.dispatch(req, res));
    this.route('GET /metrics', async (_req, res) => {
      const registry = this.server.metrics.registry;
      const body = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType });
      res.end(body);
    });
    this.route('GET /health', async (req, res) => {
      // etcd 3.4's checkHealth: no alarm, a leader (unless ?serializable=true), and a range read that answers.
      const serializable = new URL(req.url ?? '/', 'http://x').searchParams.get('serializable') === 'true';
      let healthy = this.server.status().errors.length === 0 && (serializable || this.server.proposer.leader !== 0n);
      if (healthy) {
        let timer: NodeJS.Timeout | undefined;
        const read = this.server.range({ key: Buffer.from('health'), rangeEnd: Buffer.alloc(0), limit: 1, keysOnly: true, serializable });
        const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), HEALTH_TIMEOUT_MS)));
        healthy = await Promise.race([read, timeout]).then(() => true, () => false);
        clearTimeout(timer);
      }
      const body = JSON.stringify({ health: healthy ? 'true' : 'false' });
      res.writeHead(healthy ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
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
    // etcd wraps its whole client-port HTTP mux in a permissive CORS handler.
    for (const [name, value] of Object.entries(GATEWAY_HEADERS)) res.setHeader(name, value);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path.startsWith('/v3') && this.v3.handle(req, res, path)) return;
    if (this.v2 && path.startsWith('/v2/') && this.v2.handle(req, res, path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)))) return;
    const handler = this.routes.get(`${req.method} ${path}`);
    try {
      if (handler) await handler(req, res);
      else {
        // grpc-gateway's mux answers its own prefix; Go's http.NotFound the rest.
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
        res.end(path.startsWith('/v3') ? 'Not Found\n' : '404 page not found\n');
      }
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
