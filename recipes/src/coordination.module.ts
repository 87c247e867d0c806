import { DynamicModule, Module, Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ConfigWatcher } from './config';
import { CoordinationCore } from './core';
import { configBindings } from './decorators';
import { ServiceRegistry } from './discovery';
import { ElectionService } from './election';
import { CoordinationExplorer } from './explorer';
import { CoordinationHealthIndicator } from './health';
import { HeartbeatService, TaskRegistry } from './heartbeat';
import { LockService } from './lock';
import { COORDINATION_ASYNC_OPTIONS_TYPE, COORDINATION_OPTIONS_TYPE, CoordinationConfigurableModule } from './module-definition';
import { KV_CLIENT } from './tokens';

const services = [CoordinationCore, LockService, ElectionService, ServiceRegistry, ConfigWatcher, HeartbeatService, TaskRegistry, CoordinationHealthIndicator];

const clientProvider: Provider = { provide: KV_CLIENT, inject: [CoordinationCore], useFactory: async (core: CoordinationCore) => {
  await core.start();
  return core.client;
} };

/**
 * Locks, leader election, service discovery, live config, heartbeats and task progress on an etcd-style store.
 *
 *   CoordinationModule.forRoot({ isGlobal: true, store: { endpoints: ['http://127.0.0.1:2379'] }, namespace: 'orders/' })
 *
 * Options are validated with zod when the module starts (see options.ts); the store defaults to the embedded one.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [...services, CoordinationExplorer],
  exports: services,
})
export class CoordinationModule extends CoordinationConfigurableModule {
  static forRoot(options: typeof COORDINATION_OPTIONS_TYPE): DynamicModule {
    return withConfigProviders(super.forRoot(options));
  }

  static forRootAsync(options: typeof COORDINATION_ASYNC_OPTIONS_TYPE): DynamicModule {
    return withConfigProviders(super.forRootAsync(options));
  }
}

/** Adds a LiveConfig provider for every @InjectConfig(key, schema) declared so far, and the client token. */
function withConfigProviders(m: DynamicModule): DynamicModule {
  const configProviders: Provider[] = [...configBindings.values()].map((b) => ({
    provide: b.token,
    inject: [ConfigWatcher],
    useFactory: (config: ConfigWatcher) => config.live(b.key, b.schema),
  }));
  return {
    ...m,
    providers: [...(m.providers ?? []), clientProvider, ...configProviders],
    exports: [...(m.exports ?? []), KV_CLIENT, ...configProviders.map((p) => (p as { provide: string }).provide)],
  };
}
