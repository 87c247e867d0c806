import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { sleep } from './util';
import { BehaviorSubject, Observable, Subscription, filter, map } from 'rxjs';
import type { ZodType } from 'zod';
import { CoordinationCore } from './core';
import { Keyspace, bytes, parseJson } from './keys';
import { KeyChange, watchPrefix } from './prefix-watch';

/** A config value that is always current. */
export interface LiveConfig<T> {
  readonly key: string;
  /** the last valid value (undefined until one was read). */
  readonly value: T | undefined;
  /** the store revision `value` was written at. */
  readonly revision: number;
  /** every valid value, the current one first (once read). */
  readonly value$: Observable<T>;
  /** resolves after the first read. */
  readonly ready: Promise<void>;
}

export interface ConfigChange<T> {
  /** the key relative to the config prefix, e.g. "features/dark-mode". */
  key: string;
  /** undefined: deleted. */
  value: T | undefined;
  previous: T | undefined;
  revision: number;
}

/** Config keys live at <namespace>config/<key> as JSON (a non-JSON value is taken as a string). */
@Injectable()
export class ConfigWatcher implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('CoordinationConfig');
  private readonly subscriptions = new Set<Subscription>();
  private readonly readies: Promise<void>[] = [];
  private destroyed = false;

  constructor(private readonly core: CoordinationCore) {}

  private get prefix(): string {
    return this.core.keys.prefix('config');
  }

  /** Writes a config value (for admin tools and tests). */
  async set(key: string, value: unknown): Promise<number> {
    const r = await this.core.client.put({ key: bytes(this.prefix + key), value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)) });
    return r.header.revision;
  }

  /**
   * Changes under `prefix` (relative to the config root; '' = all), validated with `schema`, in revision order.
   * The first emission carries every current key. An invalid value is logged and skipped: the key keeps its last
   * good value. After a compaction the prefix is re-read and the differences are emitted, so nothing is missed.
   */
  changes<T>(prefix: string, schema: ZodType<T>): Observable<ConfigChange<T>[]> {
    return this.batches(prefix, schema).pipe(filter((cs) => cs.length > 0));
  }

  /** Like changes(), including empty batches (the first one tells that the first read is done). */
  private batches<T>(prefix: string, schema: ZodType<T>): Observable<ConfigChange<T>[]> {
    const root = this.prefix;
    const good = new Map<string, T>();
    return watchPrefix(this.core.client, root + prefix, this.logger, this.core.closed).pipe(
      map((state) => {
        const out: ConfigChange<T>[] = [];
        for (const c of state.changes) {
          const rel = Keyspace.rest(Buffer.from(c.key), root);
          const v = this.validate(rel, c, schema);
          if (v === invalid) continue;
          const previous = good.get(rel);
          if (v === undefined) good.delete(rel);
          else good.set(rel, v);
          out.push({ key: rel, value: v, previous, revision: c.revision });
        }
        return out;
      }),
    );
  }

  /** Every valid value under `prefix`, as a map kept current. */
  watch<T>(prefix: string, schema: ZodType<T>): Observable<ReadonlyMap<string, T>> {
    const all = new Map<string, T>();
    return this.changes(prefix, schema).pipe(
      map((cs) => {
        for (const c of cs) {
          if (c.value === undefined) all.delete(c.key);
          else all.set(c.key, c.value);
        }
        return all;
      }),
    );
  }

  /** One key as a LiveConfig whose value is always current (what @InjectConfig gives). */
  live<T>(key: string, schema: ZodType<T>): LiveConfig<T> {
    const subject = new BehaviorSubject<{ value: T | undefined; revision: number }>({ value: undefined, revision: 0 });
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));
    // providers are built before onModuleInit: start the core (idempotent) before reading
    void this.core.start().then(
      () => {
        if (this.destroyed) return;
        const sub = this.batches(key, schema).subscribe((cs) => {
          // a deleted key keeps its last value, like an invalid one
          for (const c of cs) if (c.key === key) subject.next({ value: c.value ?? subject.value.value, revision: c.revision });
          resolveReady();
        });
        this.subscriptions.add(sub);
      },
      (err: unknown) => this.logger.error(`config ${key}: ${(err as Error).message}`),
    );
    this.readies.push(ready);
    return {
      key,
      get value() {
        return subject.value.value;
      },
      get revision() {
        return subject.value.revision;
      },
      value$: subject.pipe(
        map((s) => s.value),
        filter((v): v is T => v !== undefined),
      ),
      ready,
    };
  }

  private validate<T>(key: string, change: KeyChange, schema: ZodType<T>): T | undefined | typeof invalid {
    if (!change.kv) return undefined;
    const r = schema.safeParse(parseJson(change.kv.value));
    if (r.success) return r.data;
    this.logger.warn(`config ${key} at revision ${change.revision} rejected, keeping the last good value: ${r.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ')}`);
    return invalid;
  }

  /** LiveConfig values are read before the application starts serving. */
  async onApplicationBootstrap(): Promise<void> {
    await Promise.race([Promise.all(this.readies), sleep(10_000)]);
  }

  onModuleDestroy(): void {
    this.destroyed = true;
    for (const s of this.subscriptions) s.unsubscribe();
    this.subscriptions.clear();
  }
}

const invalid: unique symbol = Symbol('invalid');
