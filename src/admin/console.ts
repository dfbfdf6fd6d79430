// The operator console's static files (src/admin/console/, copied into dist/ by
// scripts/copy-assets.mjs): served without a token, under a strict CSP; every API call the page
// makes carries the bearer token itself. No data and no secret is ever put into these files.
import { readFile } from 'node:fs/promises';
import type http from 'node:http';

/** The page's own files only: nothing inline, nothing from elsewhere, no framing. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Request path -> file under console/ and its type: a fixed table, so no path reaches the disk. */
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/lib.js': { file: 'lib.js', type: 'text/javascript; charset=utf-8' },
  '/console/activity.js': { file: 'activity.js', type: 'text/javascript; charset=utf-8' },
  '/console/blocks.js': { file: 'blocks.js', type: 'text/javascript; charset=utf-8' },
  '/console/account.js': { file: 'account.js', type: 'text/javascript; charset=utf-8' },
  '/console/live.js': { file: 'live.js', type: 'text/javascript; charset=utf-8' },
  '/console/sending.js': { file: 'sending.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

const dir = new URL('./console/', import.meta.url);
const cache = new Map<string, Buffer>();

/** Serves a console file for GET/HEAD on its path; false: not a console path. */
export async function serveConsole(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<boolean> {
  const entry = FILES[path];
  if (!entry || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  let body = cache.get(entry.file);
  if (!body) {
    body = await readFile(new URL(entry.file, dir));
    cache.set(entry.file, body);
  }
  res.writeHead(200, {
    'content-type': entry.type,
    'content-length': body.length,
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cache-control': 'no-cache',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
