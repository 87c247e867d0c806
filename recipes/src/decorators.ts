import { Inject } from '@nestjs/common';
import type { ZodType } from 'zod';
import type { AcquireOptions, LockService } from './lock';
import type { ElectionService } from './election';

export const LEADER_ONLY = 'nestcd:leader-only';
export const ON_LEADER_CHANGE = 'nestcd:on-leader-change';
export const ON_CONFIG_CHANGE = 'nestcd:on-config-change';
export const WITH_LOCK = 'nestcd:with-lock';

export interface OnConfigChangeMeta {
  prefix: string;
  schema?: ZodType<unknown>;
}

/** The recipe services each provider instance with decorated methods is bound to (set by the explorer). */
export interface BoundServices {
  locks: LockService;
  elections: ElectionService;
}
export const boundServices = new WeakMap<object, BoundServices>();

function bound(self: object, decorator: string): BoundServices {
  const b = boundServices.get(self);
  if (!b) throw new Error(`${decorator} needs the CoordinationModule: register the class as a Nest provider in an app that imports it`);
  return b;
}

function wrap(descriptor: PropertyDescriptor, replacement: (original: (...args: unknown[]) => unknown) => (...args: unknown[]) => unknown): void {
  const original = descriptor.value as (...args: unknown[]) => unknown;
  const wrapped = replacement(original);
  // keep the metadata other decorators (routes, schedulers) put on the method
  for (const key of Reflect.getMetadataKeys(original)) Reflect.defineMetadata(key, Reflect.getMetadata(key, original), wrapped);
  Object.defineProperty(wrapped, 'name', { value: original.name });
  descriptor.value = wrapped;
}

/** Fills ":name" placeholders from the first argument's properties, or else from the arguments in order. */
export function lockName(pattern: string, args: readonly unknown[]): string {
  let position = 0;
  return pattern.replace(/:([A-Za-z_$][\w$]*)/g, (_, name: string) => {
    const first = args[0];
    if (first !== null && typeof first === 'object' && name in first) return String((first as Record<string, unknown>)[name]);
    return String(args[position++]);
  });
}

/**
 * Runs the method holding the named lock (released afterwards, also on throw).
 * `@WithLock('jobs/:id')` takes :id from the first argument's `id` property, or from the first argument itself.
 */
export function WithLock(name: string | ((...args: unknown[]) => string), options: Omit<AcquireOptions, 'signal'> = {}): MethodDecorator {
  return (_target, _key, descriptor) => {
    wrap(descriptor, (original) =>
      async function (this: object, ...args: unknown[]) {
        const lockKey = typeof name === 'function' ? name(...args) : lockName(name, args);
        return bound(this, '@WithLock').locks.withLock(lockKey, () => original.apply(this, args), options);
      },
    );
    Reflect.defineMetadata(WITH_LOCK, name, descriptor.value as object);
  };
}

/**
 * The method runs only while this process leads `election` (otherwise it returns undefined without running).
 * The module campaigns for `election` from bootstrap until shutdown and again after a loss.
 */
export function LeaderOnly(election: string): MethodDecorator {
  return (_target, _key, descriptor) => {
    wrap(descriptor, (original) =>
      function (this: object, ...args: unknown[]) {
        if (!bound(this, '@LeaderOnly').elections.isLeader(election)) return undefined;
        return original.apply(this, args);
      },
    );
    Reflect.defineMetadata(LEADER_ONLY, election, descriptor.value as object);
  };
}

/** Called with the new LeaderInfo (or undefined) each time the leader of `election` changes. */
export function OnLeaderChange(election: string): MethodDecorator {
  return (_target, _key, descriptor) => {
    Reflect.defineMetadata(ON_LEADER_CHANGE, election, descriptor.value as object);
  };
}

/**
 * Called with each ConfigChange under `prefix` (relative to the config root), validated with `schema` when given,
 * one call at a time per method, in revision order.
 */
export function OnConfigChange(prefix: string, schema?: ZodType<unknown>): MethodDecorator {
  return (_target, _key, descriptor) => {
    const meta: OnConfigChangeMeta = { prefix, schema };
    Reflect.defineMetadata(ON_CONFIG_CHANGE, meta, descriptor.value as object);
  };
}

export interface ConfigBinding {
  token: string;
  key: string;
  schema: ZodType<unknown>;
}

/** Every @InjectConfig seen so far; CoordinationModule.forRoot provides them. */
export const configBindings = new Map<string, ConfigBinding>();
const schemaIds = new WeakMap<object, number>();
let nextSchemaId = 0;

/** The injection token for a config key and schema. */
export function configToken(key: string, schema: ZodType<unknown>): string {
  let id = schemaIds.get(schema);
  if (id === undefined) schemaIds.set(schema, (id = nextSchemaId++));
  return `nestcd:config:${key}#${id}`;
}

/**
 * Injects a LiveConfig<T> for `key` (at <namespace>config/<key>, JSON) validated with `schema`: `.value` is always
 * the last valid value. The class must be loaded before CoordinationModule.forRoot() runs (it is when its module
 * is imported by the module that calls forRoot).
 */
export function InjectConfig<T>(key: string, schema: ZodType<T>): PropertyDecorator & ParameterDecorator {
  const token = configToken(key, schema);
  configBindings.set(token, { token, key, schema });
  return Inject(token);
}
