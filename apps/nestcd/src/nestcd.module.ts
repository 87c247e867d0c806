import { DynamicModule, Inject, Injectable, Logger, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { clientTlsFromConfig, EtcdGrpcServer, HttpGateway } from '@nestcd/api';
import type { NestcdConfig } from '@nestcd/config';
import { EtcdServer, openMember } from '@nestcd/server';

export const NESTCD_CONFIG = Symbol('NESTCD_CONFIG');

/** Starts the member's services when Nest boots and stops them, in reverse order, when it shuts down. */
@Injectable()
export class MemberLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('nestcd');
  clientPorts: number[] = [];

  constructor(
    @Inject(NESTCD_CONFIG) private readonly config: NestcdConfig,
    private readonly server: EtcdServer,
    private readonly grpc: EtcdGrpcServer,
    private readonly http: HttpGateway,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.server.start();
    this.clientPorts = await this.grpc.listen(this.config.listenClientUrls);
    this.logger.log(
      `member ${this.config.name} (${this.server.memberId.toString(16)}) of cluster ${this.server.clusterId.toString(16)} ` +
        `serving clients on ${this.config.listenClientUrls.join(',')}`,
    );
  }

  async onApplicationShutdown(signal?: string): Promise<void> {
    this.logger.log(`stopping${signal ? ` on ${signal}` : ''}`);
    // HTTP first: its idle keep-alive connections (a Prometheus scraper) would otherwise hold the gRPC grace period.
    this.http.close();
    await this.grpc.close();
    await this.server.stop();
  }
}

@Module({})
export class NestcdModule {
  static forConfig(config: NestcdConfig): DynamicModule {
    const logger = new Logger('nestcd');
    return {
      module: NestcdModule,
      providers: [
        { provide: NESTCD_CONFIG, useValue: config },
        {
          provide: EtcdServer,
          useFactory: () => openMember(config, {
            log: (m) => logger.warn(m),
            // As etcd: a member removed from its cluster has stopped serving; the process exits with status 0.
            onRemoved: (reason) => {
              logger.error(reason);
              process.exit(0);
            },
          }),
        },
        { provide: HttpGateway, inject: [EtcdServer], useFactory: (server: EtcdServer) => new HttpGateway(server, { log: (m) => logger.error(m) }) },
        {
          provide: EtcdGrpcServer,
          inject: [EtcdServer, HttpGateway],
          useFactory: async (server: EtcdServer, http: HttpGateway) => {
            server.state.auth.tokens.ttlMs = config.authTokenTtl * 1000;
            const tls = await clientTlsFromConfig(config);
            return new EtcdGrpcServer(server, { log: (m) => logger.error(m), http1Handler: http.accept, tls });
          },
        },
        MemberLifecycle,
      ],
      exports: [EtcdServer, MemberLifecycle],
    };
  }
}
