// A stolen account on submission (issue 21): through mailgate to a real Dovecot submission
// service relaying to a real SMTP server, with the sending limits on. Every message before the
// limit arrives byte for byte; the command that would cross a limit gets mailgate's 451 at its
// place in a pipelined group and never reaches Dovecot; the session stays usable; an admin
// reset lifts it; two instances on one Redis share the counts.
import { readFileSync } from 'node:fs';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { b64 } from '../helpers/codec.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const TOKEN = 'admin-token-for-sending-tests';
const redis = redisForFile();
const rig = dovecotForFile({ sink: true });

function config(sending: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'smtp', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'none', backend: 'smtp', hostname: 'mx.test' }],
    backends: { smtp: { host: '127.0.0.1', port: rig.dovecot.ports.submission } },
    admin: { listen: '127.0.0.1:0', token: TOKEN },
    limits: { rules: [], sending },
    ...extra,
  };
}

const api = (proxy: TestProxy, path: string, method = 'GET') =>
  fetch(`http://127.0.0.1:${proxy.admin!.port}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });

const transport = (proxy: TestProxy, user: string, ip: string) =>
  nodemailer.createTransport({ host: '127.0.0.1', port: proxy.port('smtp'), secure: false, ignoreTLS: true, localAddress: ip, auth: { user, pass: `${user}-pass` } });

/** The exact bytes of a message whose body holds lines that look like SMTP: a lone dot, dots
 *  to stuff, commands, a bare LF, 8-bit text. */
async function tricky(id: string): Promise<Buffer> {
  const text = `first line\r\n.\r\n..two dots\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<more@example.org>\r\nDATA\r\nbare\nLF\r\nÜnïcödé\r\n.\r\nend`;
  return new MailComposer({ from: 'alice@example.org', to: 'carol@example.org', subject: id, messageId: `<${id}@sending>`, text, textEncoding: '8bit' } as never).compile().build();
}

const delivered = (id: string) => rig.sink.messages.find((m) => m.raw.includes(`<${id}@sending>`));

/** An authenticated raw SMTP session through the proxy. */
async function session(proxy: TestProxy, user: string, ip: string): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port('smtp'), { localAddress: ip });
  await c.waitFor(/^220 /m);
  c.write(`EHLO client.test\r\n`);
  await c.waitFor(/^250 /m);
  c.clear();
  c.write(`AUTH PLAIN ${b64(`\0${user}\0${user}-pass`)}\r\n`);
  await c.waitFor(/^235 /m);
  c.clear();
  return c;
}

/** The reply codes in the client's buffer, in order (continuation lines left out). */
const codes = (text: string) => [...text.matchAll(/^(\d{3}) /gm)].map((m) => m[1]);

describe('sending limits, memory store', () => {
  it('the first N messages arrive byte for byte; the N+1th gets 451 4.7.1 at MAIL; an admin reset lets it through', async () => {
    const proxy = await rig.proxy(config({ messagesPerDay: 3 }));
    const smtp = transport(proxy, 'alice', '127.0.71.1');
    for (const id of ['m1', 'm2', 'm3']) {
      const raw = await tricky(id);
      const info = await smtp.sendMail({ envelope: { from: 'alice@example.org', to: ['carol@example.org'] }, raw });
      expect(info.accepted).toEqual(['carol@example.org']);
      await until(() => delivered(id) !== undefined, `message ${id} at the sink`);
      expect(delivered(id)!.raw.subarray(-raw.length).equals(raw)).toBe(true);
    }
    const refused = await smtp.sendMail({ envelope: { from: 'alice@example.org', to: ['carol@example.org'] }, raw: await tricky('m4') }).catch((e: { responseCode?: number; command?: string; response?: string }) => e);
    expect(refused).toMatchObject({ responseCode: 451, command: 'MAIL FROM' });
    expect((refused as { response: string }).response).toMatch(/^451 4\.7\.1 /);
    expect(delivered('m4')).toBeUndefined();

    const counts = await (await api(proxy, '/api/v1/sending?user=alice')).json();
    expect(counts).toMatchObject({ messages: { count: 3, limit: 3, remaining: 0 } });
    expect((await api(proxy, '/api/v1/sending?user=alice', 'DELETE')).status).toBeLessThan(300);
    await smtp.sendMail({ envelope: { from: 'alice@example.org', to: ['carol@example.org'] }, raw: await tricky('m5') });
    await until(() => delivered('m5') !== undefined, 'm5 at the sink');
    smtp.close();
    expect(proxy.log.raw.join('\n')).not.toContain('carol@example.org');
  });

  it('a pipelined group: the RCPT over the new-recipient limit gets 451 in its place, the others go on; MAIL right after the final dot is safe', async () => {
    const proxy = await rig.proxy(config({ newRecipientsPerDay: 2 }));
    const c = await session(proxy, 'bob', '127.0.71.2');
    c.write('MAIL FROM:<bob@example.org>\r\nRCPT TO:<r1@example.org>\r\nRCPT TO:<r2@example.org>\r\nRCPT TO:<r3@example.org>\r\nDATA\r\n');
    const group = await c.waitFor(/^354 /m);
    expect(codes(group)).toEqual(['250', '250', '250', '451', '354']);
    expect(group).toMatch(/^451 4\.7\.1 /m);
    c.clear();
    // The next transaction pipelined behind the final dot in the same write (Dovecot 2.3.19
    // aborts on that by itself): r1 is no longer new, so it passes while r4 is refused.
    c.write('Subject: p1\r\n\r\nhello\r\n.\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<r1@example.org>\r\nRCPT TO:<r4@example.org>\r\nDATA\r\n');
    const second = await c.waitFor(/^354 /m);
    expect(codes(second)).toEqual(['250', '250', '250', '451', '354']);
    c.clear();
    c.write('Subject: p2\r\n\r\nagain\r\n.\r\n');
    await c.waitFor(/^250 /m);
    c.clear();
    c.write('RSET\r\nQUIT\r\n');
    expect(codes(await c.waitFor(/^221 /m))).toEqual(['250', '221']);
    c.close();
    await until(() => rig.sink.messages.some((m) => m.raw.includes('Subject: p2')), 'p2 at the sink');
    const p1 = rig.sink.messages.find((m) => m.raw.includes('Subject: p1'))!;
    const p2 = rig.sink.messages.find((m) => m.raw.includes('Subject: p2'))!;
    expect(p1.to).toEqual(['r1@example.org', 'r2@example.org']);
    expect(p2.to).toEqual(['r1@example.org']);
    const counts = await (await api(proxy, '/api/v1/sending?user=bob')).json();
    expect(counts).toMatchObject({ messages: { count: 2 }, recipients: { count: 3 }, newRecipients: { count: 2, limit: 2, remaining: 0 } });
  });

  it('BDAT chunks that hold a final dot and commands pass untouched and count once', async () => {
    const proxy = await rig.proxy(config({ messagesPerDay: 1 }));
    const c = await session(proxy, 'alice', '127.0.71.3');
    const chunk = 'Subject: bdat\r\n\r\nline\r\n.\r\nMAIL FROM:<x@example.org>\r\n';
    c.write(`MAIL FROM:<alice@example.org>\r\nRCPT TO:<dave@example.org>\r\nBDAT ${Buffer.byteLength(chunk)} LAST\r\n${chunk}`);
    expect(codes(await c.waitFor(/^250 .*\r\n(?:.*\r\n)*250 .*\r\n(?:.*\r\n)*250 /m))).toEqual(['250', '250', '250']);
    c.clear();
    c.write('MAIL FROM:<alice@example.org>\r\n');
    expect(await c.waitFor(/^4\d\d /m)).toMatch(/^451 4\.7\.1 /m);
    c.close();
    await until(() => rig.sink.messages.some((m) => m.raw.includes('Subject: bdat')), 'the BDAT message at the sink');
    expect(rig.sink.messages.find((m) => m.raw.includes('Subject: bdat'))!.raw.toString()).toContain('line\r\n.\r\nMAIL FROM:<x@example.org>\r\n');
  });
});

describe('the shipped limits.sending (config/mailgate.yaml, as shipped)', () => {
  const shipped = (parse(readFileSync(new URL('../../config/mailgate.yaml', import.meta.url), 'utf8')) as { limits: { sending: Record<string, unknown> } }).limits.sending;

  it('a stolen account writing to strangers: the 201st first-time recipient of the day gets 451, people it wrote to before still pass', async () => {
    const proxy = await rig.proxy(config(shipped));
    const c = await session(proxy, 'alice', '127.0.71.5');
    const strangers = Array.from({ length: 201 }, (_, i) => `stranger${i}@example.net`);
    c.write(`MAIL FROM:<alice@example.org>\r\n${strangers.map((r) => `RCPT TO:<${r}>\r\n`).join('')}DATA\r\n`);
    const group = codes(await c.waitFor(/^354 /m));
    expect(group).toEqual(['250', ...Array(200).fill('250'), '451', '354']);
    c.clear();
    c.write('Subject: spam run\r\n\r\nbuy now\r\n.\r\n');
    await c.waitFor(/^250 /m);
    c.clear();
    // The next message: one stranger it wrote to above passes, a new one does not.
    c.write('MAIL FROM:<alice@example.org>\r\nRCPT TO:<stranger7@example.net>\r\nRCPT TO:<stranger999@example.net>\r\nDATA\r\n');
    expect(codes(await c.waitFor(/^354 /m))).toEqual(['250', '250', '451', '354']);
    c.clear();
    c.write('Subject: again\r\n\r\nx\r\n.\r\nQUIT\r\n');
    await c.waitFor(/^221 /m);
    c.close();
    await until(() => rig.sink.messages.some((m) => m.raw.includes('Subject: again')), 'the second message at the sink');
    expect(rig.sink.messages.find((m) => m.raw.includes('Subject: spam run'))!.to).toHaveLength(200);
    expect(rig.sink.messages.find((m) => m.raw.includes('Subject: again'))!.to).toEqual(['stranger7@example.net']);
  });
});

describe('sending limits shared by two instances on one Redis', () => {
  it('a message through each instance, and the third through either is refused', async () => {
    const store = { type: 'redis', redis: { url: redis.redis.url, keyPrefix: 'sending:', timeout: '500ms' } };
    const limits = { rules: [], keySecret: 'shared-secret-of-both-instances', sending: { messagesPerDay: 2 } };
    const a = await rig.proxy(config({}, { store, limits }));
    const b = await rig.proxy(config({}, { store, limits }));
    const send = (p: TestProxy, id: string) =>
      transport(p, 'bob', '127.0.71.4').sendMail({ envelope: { from: 'bob@example.org', to: ['erin@example.org'] }, raw: `Subject: ${id}\r\nMessage-ID: <${id}@sending>\r\n\r\nx\r\n` });
    await send(a, 'shared1');
    await send(b, 'shared2');
    for (const p of [a, b]) await expect(send(p, 'shared3')).rejects.toMatchObject({ responseCode: 451 });
    expect(delivered('shared3')).toBeUndefined();
    expect(await (await api(b, '/api/v1/sending?user=bob')).json()).toMatchObject({ messages: { count: 2, remaining: 0 } });
  });
});
