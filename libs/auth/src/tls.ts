import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import { promisify } from 'node:util';

/** etcd's TLS flags for one side (client URLs or peer URLs). */
export interface TlsFlags {
  certFile?: string;
  keyFile?: string;
  trustedCaFile?: string;
  /** --client-cert-auth / --peer-client-cert-auth: a certificate signed by the trusted CA is required. */
  clientCertAuth?: boolean;
  /** --auto-tls / --peer-auto-tls: a self-signed certificate generated at start when none is given. */
  autoTls?: boolean;
  /** --cipher-suites, in Go's names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,...). */
  cipherSuites?: string[];
}

/** What a listener and a dialer need; undefined fields are left to node's defaults. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  clientCertAuth: boolean;
  /** Self-signed: dialers cannot verify the other side (etcd skips verification with auto TLS). */
  selfSigned: boolean;
  ciphers?: string;
}

/** Go's TLS 1.2 cipher suite names (what etcd's --cipher-suites takes) to OpenSSL's. */
const GO_TO_OPENSSL: Record<string, string> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};

/** OpenSSL's cipher list for etcd's --cipher-suites; an unknown name is an error, as in etcd. */
export function opensslCiphers(goNames: string[]): string {
  return goNames
    .map((n) => {
      const mapped = GO_TO_OPENSSL[n.trim()];
      if (!mapped) throw new Error(`unexpected TLS cipher suite "${n}"`);
      return mapped;
    })
    .join(':');
}

const run = promisify(execFile);

/**
 * A self-signed ECDSA P-256 certificate for `hosts` in `dir` (etcd's SelfCert, for --auto-tls), made with the
 * openssl CLI since node's crypto cannot issue certificates. Reused when already there.
 */
export async function selfSignedCert(dir: string, hosts: string[]): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const san = [...new Set(hosts)].map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365',
    '-keyout', keyFile, '-out', certFile, '-subj', '/O=nestcd',
    '-addext', `subjectAltName=${san || 'DNS:localhost'}`,
    '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
    '-addext', 'keyUsage=digitalSignature,keyEncipherment',
  ]);
  return { certFile, keyFile };
}

/**
 * Loads the TLS material the flags name (generating a self-signed pair in `autoDir` with auto TLS and no
 * files); undefined when the flags ask for no TLS.
 */
export async function loadTls(flags: TlsFlags, autoDir: string, hosts: string[]): Promise<TlsMaterial | undefined> {
  let { certFile, keyFile } = flags;
  let selfSigned = false;
  if ((!certFile || !keyFile) && flags.autoTls) {
    ({ certFile, keyFile } = await selfSignedCert(autoDir, hosts));
    selfSigned = true;
  }
  if (!certFile || !keyFile) {
    if (certFile || keyFile) throw new Error('both --cert-file and --key-file are needed for TLS');
    return undefined;
  }
  const ca = flags.trustedCaFile ? readFileSync(flags.trustedCaFile) : undefined;
  if (flags.clientCertAuth && !ca && !selfSigned) throw new Error('client certificate authentication needs --trusted-ca-file');
  return {
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    ca,
    clientCertAuth: flags.clientCertAuth ?? false,
    selfSigned,
    ciphers: flags.cipherSuites && flags.cipherSuites.length > 0 ? opensslCiphers(flags.cipherSuites) : undefined,
  };
}

/** Options for a TLS listener: with client cert auth, a peer without a certificate the CA signed fails the handshake. */
export function serverOptions(m: TlsMaterial, alpn?: string[]): tls.TlsOptions {
  const requireCert = m.clientCertAuth && m.ca !== undefined;
  return {
    cert: m.cert,
    key: m.key,
    ca: m.ca,
    requestCert: requireCert,
    rejectUnauthorized: requireCert,
    minVersion: 'TLSv1.2',
    ...(m.ciphers ? { ciphers: m.ciphers } : {}),
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  };
}

/** Options for dialing a TLS peer with our certificate: the other side is verified against the CA when there is one. */
export function clientOptions(m: TlsMaterial): tls.ConnectionOptions {
  return {
    cert: m.cert,
    key: m.key,
    ca: m.ca,
    rejectUnauthorized: m.ca !== undefined && !m.selfSigned,
    minVersion: 'TLSv1.2',
    ...(m.ciphers ? { ciphers: m.ciphers } : {}),
  };
}

/** The subject common name of a DER certificate, or undefined. */
export function commonName(raw: Buffer | undefined): string | undefined {
  if (!raw || raw.length === 0) return undefined;
  try {
    const subject = new X509Certificate(raw).subject;
    const cn = subject.split('\n').find((l) => l.startsWith('CN='));
    return cn?.slice(3);
  } catch {
    return undefined;
  }
}
