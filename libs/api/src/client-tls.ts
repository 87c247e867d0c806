import { loadTls, serverOptions } from '@nestcd/auth';
import type { NestcdConfig } from '@nestcd/config';
import { join } from 'node:path';
import type { GrpcServerOptions } from './grpc-server';

/** The client URLs' TLS from etcd's flags (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --auto-tls, --cipher-suites). */
export async function clientTlsFromConfig(config: NestcdConfig): Promise<GrpcServerOptions['tls']> {
  const hosts = [...config.listenClientUrls, ...config.advertiseClientUrls].map((u) => new URL(u).hostname.replace(/^\[(.*)\]$/, '$1'));
  const material = await loadTls(
    {
      certFile: config.certFile,
      keyFile: config.keyFile,
      trustedCaFile: config.trustedCaFile,
      clientCertAuth: config.clientCertAuth,
      autoTls: config.autoTls,
      cipherSuites: config.cipherSuites,
    },
    join(config.dataDir, 'fixtures', 'client'),
    hosts,
  );
  return material && { options: serverOptions(material), clientCertAuth: material.clientCertAuth };
}
