import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { ROOT } from '../helpers/server.js';

/** Debian's chromium, installed by .ci/run (playwright-core downloads no browser). */
export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const ARTIFACTS = join(ROOT, 'test-artifacts');
const DOCS = join(ROOT, 'docs');

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** Every URL the page requests (documents, scripts, XHR/fetch, WebSocket upgrades, workers). */
export function recordRequests(page: Page): string[] {
  const urls: string[] = [];
  page.on('request', (request) => urls.push(request.url()));
  page.on('websocket', (ws) => urls.push(ws.url()));
  return urls;
}

/** The URLs that left this machine: anything but loopback http(s)/ws(s), data:, blob: and file:. */
export function nonLocal(urls: readonly string[]): string[] {
  return urls.filter((raw) => {
    const url = new URL(raw);
    if (['data:', 'blob:', 'file:'].includes(url.protocol)) return false;
    return !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  });
}

/**
 * Saves a screenshot under test-artifacts/. With UPDATE_SCREENSHOTS=1 it also
 * replaces the README's copy in docs/ (that is how those are made).
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  if (process.env.UPDATE_SCREENSHOTS === '1') {
    mkdirSync(DOCS, { recursive: true });
    copyFileSync(path, join(DOCS, `${name}.png`));
  }
  return path;
}
