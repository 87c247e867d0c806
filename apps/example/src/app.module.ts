import { Module } from '@nestjs/common';
import { CoordinationModule, CoordinationModuleOptions } from '@nestcd/recipes';
import { FleetService, JobsService, ReportService } from './services';

/**
 * The store comes from the environment: NESTCD_ENDPOINTS=http://127.0.0.1:2379,... for a cluster,
 * NESTCD_REDIS=redis://127.0.0.1:6379 for Redis, NESTCD_DATA_DIR for an embedded store on disk; nothing set: the
 * embedded store in memory.
 */
export function storeFromEnv(env: NodeJS.ProcessEnv): CoordinationModuleOptions['store'] {
  if (env.NESTCD_ENDPOINTS) return { endpoints: env.NESTCD_ENDPOINTS.split(',').map((e) => e.trim()).filter(Boolean) };
  if (env.NESTCD_REDIS) return { redis: env.NESTCD_REDIS };
  return { embedded: env.NESTCD_DATA_DIR ? { dataDir: env.NESTCD_DATA_DIR } : {} };
}

@Module({
  imports: [
    CoordinationModule.forRootAsync({
      isGlobal: true,
      useFactory: () => ({
        store: storeFromEnv(process.env),
        namespace: process.env.EXAMPLE_NAMESPACE ?? 'example/',
        session: { ttlSeconds: Number(process.env.EXAMPLE_TTL_SECONDS ?? 10) },
      }),
    }),
  ],
  providers: [JobsService, ReportService, FleetService],
})
export class AppModule {}
