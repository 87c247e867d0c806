// Endpoints, channels, auth token and the unary-call loop with failover. One grpc Channel per endpoint, shared by
// the six service stubs of that endpoint; the client talks to one endpoint at a time and moves on to the next when
// the current one is unreachable (UNAVAILABLE).
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { ClientError, ClientErrorCode } from '../errors';
import { etcdServices, type EtcdServiceName } from './proto';
import type { Wire } from './codec';

export interface TlsOptions {
  /** PEM (contents or a file path) of the CA that signed the servers' certificates; default: system roots. */
  ca?: Buffer | string;
  /** client certificate and key (PEM contents or file paths) for mutual TLS. */
  cert?: Buffer | string;
  key?: Buffer | string;
  /** skip server certificate verification (etcdctl's --insecure-skip-tls-verify). */
  insecureSkipVerify?: boolean;
  /** name to verify the server's certificate against, if not the endpoint's host. */
  serverName?: string;
}

export interface RemoteClientOptions {
  /** `http://host:port`, `https://host:port` or `host:port`; several for failover. */
  endpoints: string[];
  /** how long to wait for a connection to an endpoint before trying the next (default 5000; etcdctl: 2000). */
  dialTimeoutMs?: number;
  /** deadline of each unary call, retries included (default 5000, etcdctl's --command-timeout). */
  callTimeoutMs?: number;
  /** key prefix applied to keys, ranges, watches and txns and stripped from results. */
  namespace?: string | Buffer;
  /** user/password: the client authenticates and sends the token with every call. */
  credentials?: { user: string; password: string };
  /** TLS settings; an `https://` endpoint or this option switches the channel to TLS. */
  tls?: TlsOptions;
  /** gRPC keepalive pings, so a silently dead connection is noticed (default 10000 / 5000 ms). */
  keepAliveTimeMs?: number;
  keepAliveTimeoutMs?: number;
}

/** Per-call overrides. */
export interface CallOptions {
  timeoutMs?: number;
}

type Stub = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export interface Endpoint {
  readonly url: string;
  readonly address: string;
  readonly channel: grpc.Channel;
  readonly stubs: Record<EtcdServiceName, Stub>;
}

const readPem = (v: Buffer | string | undefined): Buffer | null => {
  if (v === undefined) return null;
  if (Buffer.isBuffer(v)) return v;
  return v.includes('-----BEGIN') ? Buffer.from(v) : readFileSync(v);
};

/** `http://127.0.0.1:2379` -> { address: '127.0.0.1:2379', secure: false }. */
export function parseEndpoint(url: string): { address: string; secure: boolean } {
  const m = /^(https?|unixs?):\/\/(.+?)\/?$/.exec(url.trim());
  if (!m) return { address: url.trim(), secure: false };
  return { address: m[2], secure: m[1] === 'https' || m[1] === 'unixs' };
}

export function toClientError(err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  const e = err as Partial<grpc.ServiceError> & Error;
  if (e && typeof e.code === 'number' && e.code > 0) {
    // a client-side deadline reads as Go's context error, as etcdctl prints it.
    if (e.code === grpc.status.DEADLINE_EXCEEDED && !(e.details ?? '').startsWith('etcdserver')) {
      return new ClientError(ClientErrorCode.DEADLINE_EXCEEDED, 'context deadline exceeded', { cause: err });
    }
    return new ClientError(e.code as number as ClientErrorCode, e.details || e.message, { cause: err });
  }
  return new ClientError(ClientErrorCode.UNKNOWN, e?.message ?? String(err), { cause: err });
}

const INVALID_TOKEN = 'etcdserver: invalid auth token';

export class Connection {
  readonly endpoints: Endpoint[];
  readonly dialTimeoutMs: number;
  readonly callTimeoutMs: number;
  private current = 0;
  private token: string | undefined;
  private authenticating: Promise<void> | undefined;
  private closed = false;

  constructor(readonly options: RemoteClientOptions) {
    if (!options.endpoints?.length) throw new ClientError(ClientErrorCode.INVALID_ARGUMENT, 'no endpoints given');
    this.dialTimeoutMs = options.dialTimeoutMs ?? 5000;
    this.callTimeoutMs = options.callTimeoutMs ?? 5000;
    const services = etcdServices();
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      'grpc.keepalive_time_ms': options.keepAliveTimeMs ?? 10000,
      'grpc.keepalive_timeout_ms': options.keepAliveTimeoutMs ?? 5000,
      'grpc.keepalive_permit_without_calls': 0,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.enable_retries': 0,
    };
    if (options.tls?.serverName) channelOptions['grpc.ssl_target_name_override'] = options.tls.serverName;
    this.endpoints = options.endpoints.map((url) => {
      const { address, secure } = parseEndpoint(url);
      const creds = secure || options.tls ? this.tlsCredentials(options.tls ?? {}) : grpc.credentials.createInsecure();
      const channel = new grpc.Channel(address, creds, channelOptions);
      const stubs = {} as Record<EtcdServiceName, Stub>;
      for (const name of Object.keys(services) as EtcdServiceName[]) {
        if (typeof services[name] !== 'function') continue;
        stubs[name] = new services[name](address, creds, { channelOverride: channel }) as unknown as Stub;
      }
      return { url, address, channel, stubs };
    });
  }

  private tlsCredentials(tls: TlsOptions): grpc.ChannelCredentials {
    const verify = tls.insecureSkipVerify ? { checkServerIdentity: () => undefined } : {};
    return grpc.credentials.createSsl(readPem(tls.ca), readPem(tls.key), readPem(tls.cert), verify);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The endpoint calls currently go to. */
  get active(): Endpoint {
    return this.endpoints[this.current];
  }

  /** Gives up on `ep` (it answered UNAVAILABLE or could not be reached): later calls go to the next endpoint. */
  failover(ep: Endpoint): void {
    if (this.endpoints[this.current] === ep) this.current = (this.current + 1) % this.endpoints.length;
  }

  private waitReady(ep: Endpoint, deadline: number): Promise<boolean> {
    if (ep.channel.getConnectivityState(true) === grpc.connectivityState.READY) return Promise.resolve(true);
    return new Promise((resolve) => ep.stubs.KV.waitForReady(deadline, (err) => resolve(!err)));
  }

  /**
   * An endpoint with a live connection, trying each in turn from the current one (each for at most the dial
   * timeout) until `deadline`. Nothing has been sent yet, so this is safe before any request.
   */
  async ready(deadline: number): Promise<Endpoint> {
    let lastTried = '';
    for (let round = 0; ; round++) {
      for (let i = 0; i < this.endpoints.length; i++) {
        if (this.closed) throw new ClientError(ClientErrorCode.CANCELLED, 'grpc: the client connection is closing');
        const ep = this.endpoints[this.current];
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        lastTried = ep.url;
        if (await this.waitReady(ep, Date.now() + Math.min(remaining, this.dialTimeoutMs))) return ep;
        this.failover(ep);
      }
      if (Date.now() >= deadline) {
        throw new ClientError(ClientErrorCode.DEADLINE_EXCEEDED, 'context deadline exceeded', {
          cause: new Error(`no endpoint reachable (last tried ${lastTried})`),
        });
      }
      await new Promise((r) => setTimeout(r, Math.min(100 * (round + 1), 500)));
    }
  }

  /** Metadata with the auth token, authenticating first when credentials were given. */
  async metadata(ep: Endpoint, deadline: number): Promise<grpc.Metadata> {
    const md = new grpc.Metadata();
    if (this.options.credentials) {
      if (!this.token) await this.authenticate(ep, deadline);
      if (this.token) md.set('token', this.token);
    }
    return md;
  }

  /** Forget the token (the server called it invalid): the next call or stream authenticates again. */
  resetToken(): void {
    this.token = undefined;
  }

  private authenticate(ep: Endpoint, deadline: number): Promise<void> {
    this.authenticating ??= (async () => {
      try {
        const { user, password } = this.options.credentials!;
        const res = await this.rawUnary(ep, 'Auth', 'authenticate', { name: user, password }, new grpc.Metadata(), deadline);
        this.token = String(res.token ?? '');
      } finally {
        this.authenticating = undefined;
      }
    })();
    return this.authenticating;
  }

  rawUnary(ep: Endpoint, service: EtcdServiceName, method: string, req: Wire, md: grpc.Metadata, deadline: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const fn = (ep.stubs[service][method] ?? ep.stubs[service][method[0].toUpperCase() + method.slice(1)]) as (req: Wire, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Wire) => void) => void;
      if (typeof fn !== 'function') throw new ClientError(ClientErrorCode.UNIMPLEMENTED, `unknown method ${service}.${method}`);
      fn.call(ep.stubs[service], req, md, { deadline }, (err, res) => (err ? reject(toClientError(err)) : resolve(res)));
    });
  }

  /**
   * One unary call. Reaching an endpoint is retried freely (nothing was sent); an UNAVAILABLE answer moves the
   * client to the next endpoint, and the request is re-sent there only when it is idempotent.
   */
  async unary(service: EtcdServiceName, method: string, req: Wire, idempotent: boolean, opts: CallOptions = {}, pinned?: Endpoint): Promise<Wire> {
    const deadline = Date.now() + (opts.timeoutMs ?? this.callTimeoutMs);
    let reauthenticated = false;
    for (let attempt = 0; ; attempt++) {
      const ep = pinned ?? (await this.ready(deadline));
      try {
        const md = await this.metadata(ep, deadline);
        return await this.rawUnary(ep, service, method, req, md, deadline);
      } catch (err) {
        const e = toClientError(err);
        if (e.code === ClientErrorCode.UNAUTHENTICATED && e.message === INVALID_TOKEN && this.options.credentials && !reauthenticated) {
          // the token expired or the member restarted: authenticate again once (nothing was applied).
          reauthenticated = true;
          this.token = undefined;
          continue;
        }
        if (e.code !== ClientErrorCode.UNAVAILABLE) throw e;
        if (!pinned) this.failover(ep);
        if (!idempotent || pinned || Date.now() >= deadline) throw e;
        await new Promise((r) => setTimeout(r, Math.min(50 * (attempt + 1), 500)));
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ep of this.endpoints) {
      for (const stub of Object.values(ep.stubs)) stub.close();
      ep.channel.close();
    }
  }
}
