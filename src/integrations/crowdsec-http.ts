// What every request to the CrowdSec LAPI carries: a User-Agent of the form name/version. The
// LAPI of crowdsec 1.4.x refuses a machine login from any other (Node's default, "node", gets a
// misleading 401 "incorrect Username or Password").
import { readFileSync } from 'node:fs';

let cached: string | null = null;

/** mailgate/<version> (the build's version.json; "mailgate/dev" when run from the sources). */
export function userAgent(): string {
  if (cached) return cached;
  let version = 'dev';
  try {
    version = (JSON.parse(readFileSync(new URL('../version.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    // Run from src/ (tests): there is no version.json.
  }
  return (cached = `mailgate/${version}`);
}

/** {url}/v1/<path>, whether the configured URL ends with a slash or not. */
export function lapiUrl(base: string, path: string): URL {
  return new URL(`v1/${path}`, base.endsWith('/') ? base : `${base}/`);
}
