import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import type { KvClient } from '@nestcd/client';
import PQueue from 'p-queue';
import { hostname } from 'node:os';
import { BehaviorSubject, Observable, filter } from 'rxjs';
import { CoordinationError } from './errors';
import { Keyspace } from './keys';
import { COORDINATION_OPTIONS } from './module-definition';
import { CoordinationModuleOptions, ResolvedCoordinationOptions, parseCoordinationOptions } from './options';
import { Session } from './session';
import { openStore } from './store';
import { retryTransient, sleep } from './util';

/**
 * The store connection and the current session, shared by every recipe. Opened in onModuleInit, closed in
 * onApplicationShutdown (the lease revoked first, so everything held under it goes away at once).
 * When a session is lost (not closed), a new one is opened; recipes that re-establish things (registrations,
 * campaigns) follow `sessions$`.
 */
@Injectable()
export class CoordinationCore implements OnModuleInit, OnApplicationShutdown {
  readonly options: ResolvedCoordinationOptions;
  readonly keys: Keyspace;
  readonly instanceId: string;
  /** bounds how many user callbacks run at once. */
  readonly callbacks: PQueue;
  private readonly logger = new Logger('Coordination');
  private clientRef?: KvClient;
  private ownsClient = false;
  private readonly sessionSubject = new BehaviorSubject<Session | undefined>(undefined);
  private shuttingDown = false;
  private readonly closedController = new AbortController();
  private starting?: Promise<void>;

  constructor(@Optional() @Inject(COORDINATION_OPTIONS) options?: CoordinationModuleOptions) {
    this.options = parseCoordinationOptions(options ?? {});
    this.keys = new Keyspace(this.options.namespace);
    this.instanceId = this.options.instanceId ?? `${hostname()}-${process.pid}`;
    this.callbacks = new PQueue({ concurrency: this.options.callbackConcurrency });
  }

  onModuleInit(): Promise<void> {
    return this.start();
  }

  /** Connects and opens the session (idempotent); Nest calls it, plain TypeScript callers call it themselves. */
  start(): Promise<void> {
    this.starting ??= (async () => {
      const { client, owned } = await openStore(this.options.store);
      this.clientRef = client;
      this.ownsClient = owned;
      await this.openSession();
    })();
    return this.starting;
  }

  get client(): KvClient {
    if (!this.clientRef) throw new CoordinationError('closed', 'the coordination module is not started');
    return this.clientRef;
  }

  /** The current session; throws while there is none (between a loss and its replacement). */
  get session(): Session {
    const s = this.sessionSubject.value;
    if (!s || s.isLost) throw new CoordinationError('session-lost', 'no live coordination session');
    return s;
  }

  get hasLiveSession(): boolean {
    const s = this.sessionSubject.value;
    return !!s && !s.isLost;
  }

  /** Every live session, the current one first. */
  get sessions$(): Observable<Session> {
    return this.sessionSubject.pipe(filter((s): s is Session => !!s && !s.isLost));
  }

  /** Waits for a live session (after a loss, until the replacement is open). */
  async liveSession(signal?: AbortSignal): Promise<Session> {
    for (;;) {
      if (this.hasLiveSession) return this.session;
      if (this.shuttingDown) throw new CoordinationError('closed', 'the coordination module is shutting down');
      if (signal?.aborted) throw new CoordinationError('aborted', 'aborted while waiting for a session');
      await sleep(50, signal);
    }
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  private async openSession(): Promise<void> {
    // a grant that timed out may have created a lease nobody renews: it expires by itself
    const s = await retryTransient(() => Session.open(this.client, this.options.session), this.closed);
    s.lost.addEventListener('abort', () => void this.replace(s), { once: true });
    this.sessionSubject.next(s);
  }

  private async replace(lost: Session): Promise<void> {
    if (this.shuttingDown || this.sessionSubject.value !== lost) return;
    for (let attempt = 0; !this.shuttingDown; attempt++) {
      await sleep(Math.min(5000, 200 * 2 ** attempt));
      if (this.shuttingDown) return;
      try {
        await this.openSession();
        this.logger.log(`new coordination session ${this.session.leaseId.toString(16)}`);
        return;
      } catch (err) {
        this.logger.warn(`opening a new session failed: ${(err as Error).message}`);
      }
    }
  }

  /** Marks the module as shutting down: no new session will be opened after a loss. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }

  /** Fires when the module closes: watches and retries stop. */
  get closed(): AbortSignal {
    return this.closedController.signal;
  }

  /** Revokes the session's lease, then closes the client if the module opened it. Idempotent. */
  async close(): Promise<void> {
    this.shuttingDown = true;
    this.closedController.abort();
    const s = this.sessionSubject.value;
    await s?.close();
    this.callbacks.clear();
    if (this.clientRef && this.ownsClient) {
      const c = this.clientRef;
      this.ownsClient = false;
      await c.close().catch((err: unknown) => this.logger.warn(`closing the client: ${(err as Error).message}`));
    }
  }
}
