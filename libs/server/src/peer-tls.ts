import { clientOptions, loadTls, serverOptions, TlsMaterial } from '@nestcd/auth';
import type { NestcdConfig } from '@nestcd/config';
import type { PeerTransportOptions } from '@nestcd/transport';
import { join } from 'node:path';

/** The peer URLs' TLS from etcd's flags (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth, --peer-auto-tls, --cipher-suites). */
export async function peerTlsFromConfig(config: NestcdConfig): Promise<PeerTransportOptions['tls']> {
  const hosts = [...config.listenPeerUrls, ...config.initialAdvertisePeerUrls].map((u) => new URL(u).hostname.replace(/^\[(.*)\]$/, '$1'));
  const material = await loadTls(
    {
      certFile: config.peerCertFile,
      keyFile: config.peerKeyFile,
      trustedCaFile: config.peerTrustedCaFile,
      clientCertAuth: config.peerClientCertAuth,
      autoTls: config.peerAutoTls,
      cipherSuites: config.cipherSuites,
    },
    join(config.dataDir, 'fixtures', 'peer'),
    hosts,
  );
  return material && { server: serverOptions(material), client: clientOptions(material) };
}

/** This member's client-side TLS material (--cert-file, --key-file, --trusted-ca-file, --auto-tls), for calls it makes to other members' client URLs. */
export function clientTlsMaterial(config: NestcdConfig): Promise<TlsMaterial | undefined> {
  const hosts = [...config.listenClientUrls, ...config.advertiseClientUrls].map((u) => new URL(u).hostname.replace(/^\[(.*)\]$/, '$1'));
  return loadTls(
    { certFile: config.certFile, keyFile: config.keyFile, trustedCaFile: config.trustedCaFile, clientCertAuth: config.clientCertAuth, autoTls: config.autoTls },
    join(config.dataDir, 'fixtures', 'client'),
    hosts,
  );
}
