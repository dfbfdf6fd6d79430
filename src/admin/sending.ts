// GET and DELETE /api/v1/sending?user=…: an account's sending counts against limits.sending
// (messages, recipients, first-time recipients, the window left), and lifting them (the counts
// start again; with known=1 the account's recipients are forgotten too, every one first-time
// again). Validation and answers as data; the counting is limits/sending.ts'.
import type { SendingLimits } from '../limits/sending.js';
import { AdminError, subject } from './api.js';

/** The answer to a sending route, or null when the path is not one. */
export async function sendingRoute(method: string | undefined, path: string, q: URLSearchParams, sending: SendingLimits | null | undefined): Promise<{ status: number; body: unknown } | null> {
  if (path !== '/api/v1/sending') return null;
  if (method !== 'GET' && method !== 'DELETE') throw new AdminError(405, 'Method Not Allowed', 'GET or DELETE');
  const user = subject({ user: q.get('user') }).user;
  if (user === undefined) throw new AdminError(400, 'Bad Request', 'give user');
  if (!sending) throw new AdminError(404, 'Not Found', 'no sending limits in this process (limits.sending is not set)');
  if (method === 'GET') return { status: 200, body: await sending.view(user) };
  const known = q.get('known');
  if (known !== null && known !== '0' && known !== '1') throw new AdminError(400, 'Bad Request', 'known: expected 1 (forget the recipients too) or 0');
  await sending.reset(user, known === '1');
  return { status: 200, body: { reset: true, knownRecipients: known === '1' ? 'forgotten' : 'kept', ...(await sending.view(user)) } };
}
