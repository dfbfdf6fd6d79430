// How every protocol machine answers the auth path's verdict; one rule set for all three:
// limited → temporary failure and close; unavailable → temporary failure (or the backend's own
// words for it), attempt not used;
// rejected / invalid user → the failure reply, and close after maxAuthAttempts. Pure.
import type { CloseReason, Effect, LoginResult } from './protocol.js';

export interface LoginReplies {
  limited(retryAfterSec: number): string;
  unavailable: string;
  authFailed: string;
  tooManyFailures: string;
}

export interface LoginAnswer {
  effects: Effect[];
  /** Set when the connection ends here. */
  close: CloseReason | null;
  /** The attempt counts toward maxAuthAttempts. */
  failed: boolean;
}

export function answerLogin(result: LoginResult, replies: LoginReplies, failedBefore: number, maxAuthAttempts: number): LoginAnswer {
  const send = (data: string | Buffer): Effect => ({ type: 'send', data });
  switch (result.kind) {
    case 'limited':
      return { effects: [send(replies.limited(result.retryAfterSec)), { type: 'close', reason: 'limited' }], close: 'limited', failed: false };
    case 'unavailable':
      return { effects: [send(result.reply ?? replies.unavailable)], close: null, failed: false };
    case 'rejected':
    case 'invalid-user': {
      const reply = send((result.kind === 'rejected' ? result.reply : null) ?? replies.authFailed);
      if (failedBefore + 1 < maxAuthAttempts) return { effects: [reply], close: null, failed: true };
      return { effects: [reply, send(replies.tooManyFailures), { type: 'close', reason: 'too-many-failures' }], close: 'too-many-failures', failed: true };
    }
  }
}
