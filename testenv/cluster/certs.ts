// Certificates for the test world's KubeVirt components and the API aggregation layer, made with
// the openssl command line (EC P-256: fast, and accepted by Go's TLS stack).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface CertificateAuthority extends CertificateFiles {
  /** PEM of the CA certificate. */
  pem: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA valid for ten years. */
export function createCertificateAuthority(dir: string, name: string): CertificateAuthority {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${name}-ca.key`);
  const cert = join(dir, `${name}-ca.crt`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl(['req', '-x509', '-new', '-key', key, '-sha256', '-days', '3650', '-subj', `/CN=${name}-ca`, '-out', cert]);
  return { key, cert, pem: readFileSync(cert, 'utf8') };
}

export interface LeafOptions {
  commonName: string;
  /** DNS names and IP addresses; IPs are recognised by their form. */
  subjectAltNames?: string[];
  usage: 'server' | 'client' | 'both';
}

/** A certificate signed by the CA, for a server, a client, or both. */
export function issueCertificate(ca: CertificateAuthority, dir: string, name: string, options: LeafOptions): CertificateFiles {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  const sans = (options.subjectAltNames ?? []).map((s) => (/^[0-9.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`));
  const usage = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[options.usage];
  writeFileSync(
    ext,
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${usage}`,
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
      '',
    ].join('\n'),
  );
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${options.commonName}`, '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '3650', '-sha256', '-extfile', ext, '-out', cert]);
  return { key, cert };
}
