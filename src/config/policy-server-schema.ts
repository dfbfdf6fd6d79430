// policyServer: mailgate's engine answering Dovecot's auth policy and nginx's auth_http for
// sites that keep their own front end (policy-server/). Validated against the rest of the
// config by schema.ts.
import { z } from 'zod';
import { duration, hostPort } from './fields.js';

export const policyServer = z
  .strictObject({
    listen: hostPort.describe('Address of the policy HTTP endpoint, host:port: Dovecot asks /dovecot, nginx asks /nginx.'),
    apiKey: z
      .string()
      .min(16, 'expected at least 16 characters')
      .optional()
      .describe('Required in an X-API-Key header when set (Dovecot: auth_policy_server_api_header = <key>; nginx: auth_http_header X-API-Key <key>); or MAILGATE_POLICY_API_KEY. Mandatory unless listen is a loopback address.'),
    timeout: duration('Every policy answer is given within this, whatever the store does (Dovecot gives up after auth_policy_server_timeout_msecs, 2 s by default); a store that has not answered by then lets the login go on, logged and counted.').prefault('1500ms'),
    maxWait: duration("Longest delay mailgate asks for: Dovecot's positive status (a tarpit) and nginx's Auth-Wait, which nginx spends holding the client before the error; the error text still gives the real retry time.", 60_000).prefault('3s'),
    reportTimeout: duration('Dovecot: an allowed login whose report has not come in this time gives back what it reserved (Dovecot crashed, or auth_policy_report_after_auth = no).', 600_000).prefault('60s'),
    nginx: z
      .strictObject({
        imap: z.string().optional().describe('Backend for IMAP logins.'),
        pop3: z.string().optional().describe('Backend for POP3 logins.'),
        smtp: z.string().optional().describe('Backend for SMTP (submission) logins.'),
      })
      .prefault({})
      .describe("nginx: the backend (a key of backends) that verifies each login of a protocol (mailgate replays it there) and that nginx is then sent to (its first server's address). A protocol without one is answered with a temporary failure."),
  })
  .describe("Answer Dovecot's auth policy requests (auth_policy_server_url) and nginx's auth_http with mailgate's rules; absent: none. With it, listeners may be empty.");

export type PolicyServerConfig = z.output<typeof policyServer>;
