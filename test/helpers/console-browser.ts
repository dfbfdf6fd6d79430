// The operator console's browser tests (test/e2e/console*.test.ts): Debian's headless chromium
// driven by playwright-core, with one laptop-sized page that records every request it makes
// and every console error (a CSP violation is one) for the tests to check.
import { chromium, type Browser, type Page } from 'playwright-core';

/** Launches the browser and opens the page; the caller closes the browser. */
export async function launchConsole(requests: string[], errors: string[]): Promise<{ browser: Browser; page: Page }> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  return { browser, page };
}
