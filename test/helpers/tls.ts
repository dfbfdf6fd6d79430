// Test TLS material: a self-signed certificate for localhost/127.0.0.1 in a given directory,
// produced by the same generator mailgate uses for its development certificate.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateDevCertificate } from '../../src/server/tls.js';

export interface TestCert {
  certPath: string;
  keyPath: string;
  cert: Buffer;
}

export async function devCert(dir: string): Promise<TestCert> {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  await generateDevCertificate(certPath, keyPath);
  return { certPath, keyPath, cert: readFileSync(certPath) };
}
