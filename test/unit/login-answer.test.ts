// The one rule set every machine answers a login verdict with (protocols/login-answer.ts):
// whose words the client hears, when the connection closes, which attempts count.
import { describe, expect, it } from 'vitest';
import { answerLogin, type LoginReplies } from '../../src/protocols/login-answer.js';

const replies: LoginReplies = {
  limited: (s) => `limited ${s}\r\n`,
  unavailable: 'unavailable\r\n',
  authFailed: 'failed\r\n',
  tooManyFailures: 'bye\r\n',
};
const sent = (a: ReturnType<typeof answerLogin>) => a.effects.flatMap((e) => (e.type === 'send' ? [e.data.toString()] : []));

describe('answerLogin', () => {
  it('a rejection carries the backend\'s own words; without them (mailgate refused unasked) the protocol\'s failure reply', () => {
    expect(sent(answerLogin({ kind: 'rejected', reply: Buffer.from('backend says no\r\n') }, replies, 0, 3))).toEqual(['backend says no\r\n']);
    expect(sent(answerLogin({ kind: 'rejected', reply: null }, replies, 0, 3))).toEqual(['failed\r\n']);
    expect(sent(answerLogin({ kind: 'invalid-user' }, replies, 0, 3))).toEqual(['failed\r\n']);
  });

  it('failures count toward maxAuthAttempts and the last one closes; limited closes at once; unavailable never counts', () => {
    expect(answerLogin({ kind: 'rejected', reply: null }, replies, 1, 3)).toMatchObject({ close: null, failed: true });
    const last = answerLogin({ kind: 'rejected', reply: null }, replies, 2, 3);
    expect(last).toMatchObject({ close: 'too-many-failures', failed: true });
    expect(sent(last)).toEqual(['failed\r\n', 'bye\r\n']);
    expect(answerLogin({ kind: 'limited', retryAfterSec: 7 }, replies, 0, 3)).toMatchObject({ close: 'limited', failed: false });
    expect(sent(answerLogin({ kind: 'limited', retryAfterSec: 7 }, replies, 0, 3))).toEqual(['limited 7\r\n']);
    expect(answerLogin({ kind: 'unavailable' }, replies, 2, 3)).toMatchObject({ close: null, failed: false });
    expect(sent(answerLogin({ kind: 'unavailable', reply: Buffer.from('-ERR [IN-USE] x\r\n') }, replies, 2, 3))).toEqual(['-ERR [IN-USE] x\r\n']);
  });
});
