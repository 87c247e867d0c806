import { BeforeApplicationShutdown, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Observable, ReplaySubject, Subscription, firstValueFrom, map, share } from 'rxjs';
import { z } from 'zod';
import { CoordinationCore } from './core';
import { bytes, parseJson, segment } from './keys';
import { watchPrefix } from './prefix-watch';
import { Session } from './session';

export const serviceInstanceSchema = z.object({
  service: z.string().min(1),
  id: z.string().min(1),
  address: z.string().min(1),
  meta: z.record(z.string(), z.unknown()).default({}),
});

export type ServiceInstance = z.output<typeof serviceInstanceSchema>;
export type RegisterInput = z.input<typeof serviceInstanceSchema>;
export type PickStrategy = 'round-robin' | 'random' | 'sticky';

/** An instance registered by this process; it follows the session (re-registered on a new one). */
export interface Registration {
  readonly instance: ServiceInstance;
  deregister(): Promise<void>;
}

interface ServiceView {
  instances: ServiceInstance[];
  subscription: Subscription;
  ready: Promise<void>;
  next: number;
  sticky?: string;
}

/**
 * Service discovery (Curator's ServiceDiscovery with its providers): instances live at
 * <namespace>services/<service>/<id> as JSON under their owner's session lease, so a dead process's instances
 * disappear with its lease. Consumers read the prefix and then watch it from the next revision.
 */
@Injectable()
export class ServiceRegistry implements BeforeApplicationShutdown, OnModuleDestroy {
  private readonly logger = new Logger('CoordinationDiscovery');
  private readonly registrations = new Set<Registration>();
  private readonly views = new Map<string, ServiceView>();
  private readonly streams = new Map<string, Observable<ServiceInstance[]>>();
  /** service/id -> skip until (ms since epoch). */
  private readonly downUntil = new Map<string, number>();

  constructor(private readonly core: CoordinationCore) {}

  private key(service: string, id: string): string {
    return this.core.keys.key('services', segment(service), segment(id));
  }

  /** Registers an instance under the session; re-registered whenever a new session replaces a lost one. */
  async register(input: RegisterInput): Promise<Registration> {
    const instance = serviceInstanceSchema.parse(input);
    const key = bytes(this.key(instance.service, instance.id));
    const value = Buffer.from(JSON.stringify(instance));
    const put = (s: Session) => this.core.client.put({ key, value, lease: s.leaseId });
    await put(await this.core.liveSession());
    let first = true;
    const sub = this.core.sessions$.subscribe((s) => {
      if (first) {
        first = false;
        return;
      }
      put(s).catch((err: unknown) => this.logger.warn(`re-registering ${instance.service}/${instance.id}: ${(err as Error).message}`));
    });
    let done: Promise<void> | undefined;
    const registration: Registration = {
      instance,
      deregister: () =>
        (done ??= (async () => {
          sub.unsubscribe();
          this.registrations.delete(registration);
          await this.core.client.deleteRange({ key }).catch((err: unknown) => this.logger.warn(`deregistering: ${(err as Error).message}`));
        })()),
    };
    this.registrations.add(registration);
    return registration;
  }

  /** The instances of `service`, current first, then on every change. */
  instances$(service: string): Observable<ServiceInstance[]> {
    let s = this.streams.get(service);
    if (!s) {
      const prefix = this.core.keys.prefix('services', segment(service));
      s = watchPrefix(this.core.client, prefix, this.logger, this.core.closed).pipe(
        map((st) => {
          const out: ServiceInstance[] = [];
          for (const kv of st.kvs.values()) {
            const r = serviceInstanceSchema.safeParse(parseJson(kv.value));
            if (r.success) out.push(r.data);
          }
          return out.sort((a, b) => a.id.localeCompare(b.id));
        }),
        share({ connector: () => new ReplaySubject(1), resetOnRefCountZero: true }),
      );
      this.streams.set(service, s);
    }
    return s;
  }

  /** The instances right now (after the first read). */
  instances(service: string): Promise<ServiceInstance[]> {
    return firstValueFrom(this.instances$(service));
  }

  /**
   * One instance to call. Instances noted as failing are skipped while their time lasts (all of them skipped:
   * undefined). 'sticky' keeps answering the same instance while it is there and healthy.
   */
  async pick(service: string, strategy: PickStrategy = 'round-robin'): Promise<ServiceInstance | undefined> {
    const view = this.view(service);
    await view.ready;
    const now = Date.now();
    const healthy = view.instances.filter((i) => (this.downUntil.get(`${service}/${i.id}`) ?? 0) <= now);
    if (healthy.length === 0) return undefined;
    switch (strategy) {
      case 'random':
        return healthy[Math.floor(Math.random() * healthy.length)];
      case 'sticky': {
        const kept = healthy.find((i) => i.id === view.sticky);
        if (kept) return kept;
        view.sticky = healthy[0].id;
        return healthy[0];
      }
      default:
        return healthy[view.next++ % healthy.length];
    }
  }

  /** Skips an instance in pick() for `forMs` (default 30 s), e.g. after a failed call. */
  noteError(service: string, id: string, forMs = 30_000): void {
    this.downUntil.set(`${service}/${id}`, Date.now() + forMs);
  }

  private view(service: string): ServiceView {
    let v = this.views.get(service);
    if (!v) {
      let resolveReady!: () => void;
      const ready = new Promise<void>((r) => (resolveReady = r));
      const view: ServiceView = { instances: [], ready, next: 0, subscription: Subscription.EMPTY };
      view.subscription = this.instances$(service).subscribe((list) => {
        view.instances = list;
        resolveReady();
      });
      this.views.set(service, view);
      v = view;
    }
    return v;
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.core.beginShutdown();
    await Promise.all([...this.registrations].map((r) => r.deregister()));
  }

  onModuleDestroy(): void {
    for (const v of this.views.values()) v.subscription.unsubscribe();
    this.views.clear();
  }
}
