// DELETE /api/v1/blocks?userHash=…: lift the blocks of an account known only by its keyed hash,
// as GET /api/v1/blocks lists it (the console's Unblock on an account's row; the name is never
// stored, so nothing could turn the hash back into it). Lifts the rules keyed on that user
// alone (their counters reset with them, as DELETE /api/v1/blocks/{user} does); an ip+user
// block is lifted by its address.
import { parseKey } from '../limits/keys.js';
import type { LimitStore } from '../stores/store.js';
import { AdminError } from './api.js';

/** A userHash as keys.ts makes it: 22 base64url characters (128 bits of an HMAC-SHA-256). */
const USER_HASH = /^[A-Za-z0-9_-]{22}$/;

/** The answer to DELETE /api/v1/blocks?userHash=…, or null when the request is not one. */
export async function unblockUserRoute(method: string | undefined, path: string, q: URLSearchParams, store: LimitStore): Promise<{ reset: string[] } | null> {
  if (path !== '/api/v1/blocks' || method !== 'DELETE') return null;
  const hash = q.get('userHash');
  if (hash === null || !USER_HASH.test(hash)) throw new AdminError(400, 'Bad Request', 'userHash: expected the 22-character hash GET /api/v1/blocks lists');
  const keys = (await store.blocks()).map((b) => b.key).filter((k) => {
    const p = parseKey(k);
    return p?.kind === 'user' && p.userHash === hash;
  });
  if (keys.length === 0) throw new AdminError(404, 'Not Found', 'no block on that account');
  await Promise.all(keys.map((k) => store.reset(k)));
  return { reset: [...new Set(keys.map((k) => parseKey(k)!.rule))] };
}
