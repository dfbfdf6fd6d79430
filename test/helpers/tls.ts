// Test TLS material: a self-signed certificate for localhost/127.0.0.1 in a given directory,
// produced by the same generator mailgate uses for its development certificate.
import { readFileSync, writeFileSync } from 'node:fs';
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

/** A self-signed certificate for the given DNS names (the first is also the common name), for
 *  tests that tell certificates apart (tls.sni). */
export async function certFor(dir: string, names: string[]): Promise<TestCert> {
  const selfsigned = (await import('selfsigned')).default;
  const pems = await selfsigned.generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [{ name: 'subjectAltName', altNames: names.map((value) => ({ type: 2, value })) }],
  });
  const stem = join(dir, names[0]!.replace(/\*/g, '_'));
  const certPath = `${stem}.cert.pem`;
  const keyPath = `${stem}.key.pem`;
  writeFileSync(certPath, pems.cert);
  writeFileSync(keyPath, pems.private, { mode: 0o600 });
  return { certPath, keyPath, cert: Buffer.from(pems.cert) };
}
