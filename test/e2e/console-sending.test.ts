// The operator console's sending counts (issue 21) in a real headless browser (Debian's
// chromium driven by playwright-core) against an in-process mailgate whose submission listener
// fronts a real Dovecot relaying to a real SMTP server: messages sent with nodemailer show up
// in the account view against their limits; the reset buttons bring the counts (and, with the
// second, the known recipients) back to nothing, as the API confirms; a mailgate without
// limits.sending says so.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchConsole } from '../helpers/console-browser.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const TOKEN = 'console-sending-token-for-tests-0815';
/** Bounds every wait on the page. */
const WAIT = { timeout: 15_000 };

const rig = dovecotForFile({ sink: true });
const shots = mkdtempSync(join(tmpdir(), 'mailgate-console-sending-'));
let proxy: TestProxy;
let browser: Browser;
let page: Page;
let origin: string;
const requests: string[] = [];
const errors: string[] = [];

interface Counts {
  windowLeftSeconds: number;
  messages: { count: number; limit: number | null; remaining: number | null };
  recipients: { count: number };
  newRecipients: { count: number; remaining: number | null };
}

const config = (admin: Record<string, unknown>, sending?: Record<string, unknown>) => ({
  listeners: [{ name: 'smtp', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'none', backend: 'smtp', hostname: 'mx.test' }],
  backends: { smtp: { host: '127.0.0.1', port: rig.dovecot.ports.submission } },
  admin: { listen: '127.0.0.1:0', ...admin },
  limits: { rules: [], ...(sending ? { sending } : {}) },
});

const counts = async (user: string): Promise<Counts> => (await (await fetch(`${origin}/api/v1/sending?user=${user}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as Counts;

/** One message from alice through mailgate's submission listener, delivered at the sink. */
async function send(id: string, to: string[]): Promise<void> {
  const smtp = nodemailer.createTransport({ host: '127.0.0.1', port: proxy.port('smtp'), secure: false, ignoreTLS: true, auth: { user: 'alice', pass: 'alice-pass' } });
  try {
    const info = await smtp.sendMail({ envelope: { from: 'alice@example.org', to }, raw: `Subject: ${id}\r\nMessage-ID: <${id}@console-sending>\r\n\r\nhello\r\n` });
    expect(info.accepted).toEqual(to);
  } finally {
    smtp.close();
  }
  await until(() => rig.sink.messages.some((m) => m.raw.includes(`<${id}@console-sending>`)), `${id} at the sink`);
}

/** The cells after the row header of one count: sent, limit, remaining. */
const cells = (label: string) => page.locator('#sending-rows tr', { has: page.getByRole('rowheader', { name: label, exact: true }) }).locator('td').allTextContents();

async function lookUp(user: string): Promise<void> {
  await page.getByLabel('User', { exact: true }).fill(user);
  await page.getByLabel('User', { exact: true }).press('Enter');
}

beforeAll(async () => {
  proxy = await rig.proxy(config({ token: TOKEN }, { messagesPerDay: 5, recipientsPerDay: 10, newRecipientsPerDay: 3 }));
  origin = `http://127.0.0.1:${proxy.admin!.port}`;
  ({ browser, page } = await launchConsole(requests, errors));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  console.info(`console sending screenshots: ${shots}`);
});

describe('operator console, sending counts', () => {
  it("shows an account's messages, recipients and first-time recipients sent through submission", async () => {
    await send('s1', ['carol@example.org', 'dave@example.org']);
    await send('s2', ['carol@example.org']);
    await until(async () => (await counts('alice')).messages.count === 2, 'two messages counted');

    await page.goto(`${origin}/`);
    await page.locator('#token').fill(TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#console').waitFor({ state: 'visible', ...WAIT });
    await lookUp('alice');
    await page.locator('#sending-rows tr').first().waitFor(WAIT);
    // carol twice, dave once: three recipients, two of them first-time.
    expect(await cells('Messages')).toEqual(['2', '5', '3']);
    expect(await cells('Recipients')).toEqual(['3', '10', '7']);
    expect(await cells('First-time recipients')).toEqual(['2', '3', '1']);
    expect(await page.getByRole('status').filter({ hasText: 'window of 1d:' }).textContent()).toMatch(/^Counting in a window of 1d: (23h 59m|1d) left/);
    await page.locator('#account').screenshot({ path: join(shots, 'sending.png') });
  });

  it('Reset sending counts brings them to 0 and keeps the known recipients', async () => {
    await page.getByRole('button', { name: 'Reset sending counts' }).click();
    await page.locator('#message', { hasText: 'Reset the sending counts of alice.' }).waitFor(WAIT);
    await page.locator('#sending-state', { hasText: 'Nothing counted' }).waitFor(WAIT);
    expect(await cells('Messages')).toEqual(['0', '5', '5']);
    expect(await counts('alice')).toMatchObject({ windowLeftSeconds: 0, messages: { count: 0 }, recipients: { count: 0 }, newRecipients: { count: 0 } });

    // carol is still known: not a first-time recipient.
    await send('s3', ['carol@example.org']);
    await until(async () => (await counts('alice')).messages.count === 1, 's3 counted');
    expect(await counts('alice')).toMatchObject({ recipients: { count: 1 }, newRecipients: { count: 0 } });
  });

  it('the second button, from the keyboard, forgets the known recipients too; a reached limit is marked', async () => {
    await lookUp('alice');
    await page.locator('#sending-rows td', { hasText: /^1$/ }).first().waitFor(WAIT);
    await page.getByRole('button', { name: 'Reset sending counts' }).focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('sending-forget');
    await page.keyboard.press('Enter');
    await page.locator('#message', { hasText: 'Reset the sending counts of alice and forgot its known recipients.' }).waitFor(WAIT);
    expect(await counts('alice')).toMatchObject({ messages: { count: 0 }, newRecipients: { count: 0 } });

    // carol is first-time again, with two others: the limit of 3 is reached.
    await send('s4', ['carol@example.org', 'erin@example.org', 'frank@example.org']);
    await until(async () => (await counts('alice')).messages.count === 1, 's4 counted');
    expect(await counts('alice')).toMatchObject({ newRecipients: { count: 3, remaining: 0 } });
    await lookUp('alice');
    await page.locator('#sending-rows td.down', { hasText: '0 (reached)' }).waitFor(WAIT);
    expect(await cells('First-time recipients')).toEqual(['3', '3', '0 (reached)']);
    await page.locator('#account').screenshot({ path: join(shots, 'sending-reached.png') });
  });

  it('fits a phone screen, the counts table without scrolling sideways', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    expect(await page.locator('#sending-counts .scroll').evaluate((e) => e.scrollWidth <= e.clientWidth)).toBe(true);
    await page.locator('#account').screenshot({ path: join(shots, 'sending-phone-account.png') });
    await page.screenshot({ path: join(shots, 'sending-phone.png'), fullPage: true });
  });

  it('says the sending limits are off where limits.sending is not set', async () => {
    const off = await rig.proxy(config({}));
    const other = await browser.newPage();
    try {
      other.on('pageerror', (e) => errors.push(e.message));
      await other.goto(`http://127.0.0.1:${off.admin!.port}/`);
      await other.locator('#console').waitFor({ state: 'visible', ...WAIT });
      await other.getByLabel('User', { exact: true }).fill('alice');
      await other.getByLabel('User', { exact: true }).press('Enter');
      await other.locator('#sending-state', { hasText: 'Sending limits are off' }).waitFor(WAIT);
      expect(await other.locator('#sending-counts').isHidden()).toBe(true);
      expect(await other.getByRole('button', { name: 'Reset sending counts' }).count()).toBe(0);
    } finally {
      await other.close();
    }
    expect(requests.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
    expect(errors.filter((e) => !/status of 40[0-9]/.test(e))).toEqual([]);
  });
});
