// TLS material for client-facing listeners. Generates a clearly marked self-signed
// development certificate when configured to and the files are missing.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import tls from 'node:tls';
import selfsigned from 'selfsigned';
import type { Config } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import type { Logger } from '../logging/logger.js';

export const DEV_CERT_CN = 'mailgate development certificate - not for production';

export async function generateDevCertificate(cert: string, key: string): Promise<void> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: DEV_CERT_CN }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + 825 * 86_400_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  });
  mkdirSync(dirname(cert), { recursive: true });
  mkdirSync(dirname(key), { recursive: true });
  writeFileSync(key, pems.private, { mode: 0o600 });
  writeFileSync(cert, pems.cert, { mode: 0o644 });
}

export async function loadServerTls(cfg: Config['tls'], log: Logger): Promise<tls.SecureContextOptions | null> {
  if (!cfg) return null;
  if (cfg.devCertificate) {
    if (!existsSync(cfg.cert) && !existsSync(cfg.key)) {
      await generateDevCertificate(cfg.cert, cfg.key);
    }
    log.warn(
      { event: 'tls.dev-certificate', cert: cfg.cert },
      'using a self-signed development certificate (tls.devCertificate: true); clients will not trust it: configure a real certificate for production',
    );
  }
  try {
    const opts = { cert: readFileSync(cfg.cert), key: readFileSync(cfg.key) };
    tls.createSecureContext(opts); // fail at start-up, not at the first client
    return opts;
  } catch (err) {
    throw new MailgateError('MG_TLS_MATERIAL', `tls.cert/tls.key: ${(err as Error).message}`);
  }
}
