import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir, startServer, type TestServer, withoutEos } from '../helpers/server.js';
import { HAVE_CHROMIUM, launchChromium, nonLocal, recordRequests, screenshot } from './chromium.js';

/** The text GraphiQL's (Monaco) result pane shows now; Monaco draws spaces as no-break spaces. */
const responseText = (page: Page) =>
  page.evaluate(() => ((document.querySelector('.graphiql-response .view-lines') as HTMLElement | null)?.innerText ?? '').replace(/\u00a0/g, ' '));

/** Opens GraphiQL and waits until its editors are up. */
async function openGraphiQL(page: Page, url: string): Promise<void> {
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelector('.graphiql-query-editor .view-lines')?.textContent?.includes('inferql'), null, { timeout: 60_000 });
}

/** Switches tabs (a plain click lands on the tab bar's drag handler, not the tab). */
async function openTab(page: Page, title: string): Promise<void> {
  await page.locator('.graphiql-tab-button', { hasText: title }).dispatchEvent('click');
  await page.waitForFunction((t) => document.querySelector('.graphiql-tab-active')?.textContent?.includes(t), title);
}

/**
 * Records every distinct `"index": N` the result pane shows, with whether that
 * event was the last (had a finishReason), as the DOM changes: no polling gaps.
 */
async function watchTokenIndexes(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen: { index: number; final: boolean }[] = [];
    (window as unknown as { tokenIndexes: typeof seen }).tokenIndexes = seen;
    const pane = document.querySelector('.graphiql-response')!;
    const read = () => {
      const text = ((pane.querySelector('.view-lines') as HTMLElement | null)?.innerText ?? '').replace(/\u00a0/g, ' ');
      const index = /"index":\s*(\d+)/.exec(text);
      if (!index) return;
      const final = /"finishReason":\s*"/.test(text);
      const last = seen.at(-1);
      if (!last || last.index !== Number(index[1]) || last.final !== final) seen.push({ index: Number(index[1]), final });
    };
    new MutationObserver(read).observe(pane, { subtree: true, childList: true, characterData: true });
  });
}

const tokenIndexes = (page: Page) => page.evaluate(() => (window as unknown as { tokenIndexes: { index: number; final: boolean }[] }).tokenIndexes);

const HOLD_AT = 3;

/**
 * Passes the page's WebSocket frames through to the real server, but holds the
 * server's frames after the `generate` event with index `at` until released:
 * the pane then shows a stream in progress, for the assertion and the screenshot.
 */
async function holdAfterToken(page: Page, at: number) {
  let holding = false;
  let url = '';
  const held: (string | Buffer)[] = [];
  let toPage: ((m: string | Buffer) => void) | null = null;
  let reached!: () => void;
  const reachedHold = new Promise<void>((r) => (reached = r));
  await page.routeWebSocket(/\/graphql$/, (ws) => {
    url = ws.url();
    const upstream = ws.connectToServer();
    ws.onMessage((m) => upstream.send(m));
    toPage = (m) => ws.send(m);
    // Frames reach the page 60 ms apart, so each token gets a paint of its own (on a fast machine
    // several arrive within one frame and the pane would only ever show the last of them).
    let paced = Promise.resolve();
    upstream.onMessage((m) => {
      if (holding) return void held.push(m);
      if (typeof m === 'string' && new RegExp(`"index":${at}\\b`).test(m)) holding = true;
      const hold = holding;
      paced = paced.then(async () => {
        ws.send(m);
        if (hold) reached();
        await new Promise((r) => setTimeout(r, 60));
      });
    });
  });
  return {
    holding: reachedHold,
    url: () => url,
    release: () => {
      holding = false;
      for (const m of held.splice(0)) toPage?.(m);
    },
  };
}

async function runGenerateTab(page: Page): Promise<{ index: number; final: boolean }[]> {
  await openTab(page, 'Generate');
  await watchTokenIndexes(page);
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(() => (window as unknown as { tokenIndexes: { final: boolean }[] }).tokenIndexes.some((e) => e.final), null, { timeout: 60_000 });
  return tokenIndexes(page);
}

describe.skipIf(!HAVE_CHROMIUM)('GraphiQL in chromium', () => {
  let browser: Browser;
  let server: TestServer;

  beforeAll(async () => {
    // fortune-lm without EOS: the Generate tab samples, and a stream that ended before the hold would never reach it.
    [browser, server] = await Promise.all([launchChromium(), startServer({ modelsDir: withoutEos(modelsDir({ digits: {}, 'fortune-lm': {}, 'fortune-topic': {} })) })]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('runs the models query and streams generate tokens one after another, with nothing fetched from outside', { timeout: 180_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
    const requests = recordRequests(page);
    // (WebSocket routes apply to documents loaded after they are set.)
    const gate = await holdAfterToken(page, HOLD_AT);
    await openGraphiQL(page, server.url);

    // The default document: one tab per main use, with ready variables.
    const tabs = await page.locator('.graphiql-tab-button').allInnerTexts();
    expect(tabs).toEqual(['Models', 'Generate', 'SubmitJob', 'ServerStats']);

    // Models tab: several operations, so ▶ offers a menu.
    await page.click('.graphiql-execute-button');
    await page.getByRole('menuitem', { name: 'Models' }).click();
    await expect.poll(() => responseText(page), { timeout: 30_000 }).toContain('"name": "digits"');
    expect(await responseText(page)).toContain('"status": "READY"');

    // Generate tab: a subscription over WebSocket with ready variables; the pane changes per token.
    await openTab(page, 'Generate');
    await page.waitForFunction(() =>
      [...document.querySelectorAll('.graphiql-editor-tool .view-lines')].some((e) => e.textContent?.includes('"fortune-lm"')),
    );
    const pending = runGenerateTab(page);
    // Frames stop after token HOLD_AT: the pane shows the stream mid-way, token by token so far.
    await gate.holding;
    await page.waitForFunction((n) => (window as unknown as { tokenIndexes: { index: number }[] }).tokenIndexes.some((e) => e.index === n), HOLD_AT);
    const midway = await tokenIndexes(page);
    expect(midway.every((e) => !e.final)).toBe(true);
    expect(midway.length, JSON.stringify(midway)).toBeGreaterThanOrEqual(2);
    expect(await responseText(page)).toMatch(/"finishReason": null/);
    await screenshot(page, 'graphiql-streaming');
    gate.release();

    const seen = await pending;
    const indexes = seen.map((e) => e.index);
    // Each event replaced the last, in order, and the last one finished the stream.
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(seen.at(-1)!.final).toBe(true);
    expect(gate.url()).toBe(server.wsUrl);
    requests.push(gate.url());

    expect(nonLocal(requests)).toEqual([]);
    await page.close();
  });

  describe('with API keys on', () => {
    const KEY = 'graphiql-test-key-1';
    let authServer: TestServer;

    beforeAll(async () => {
      authServer = await startServer({ apiKeys: `${KEY}=infer+jobs`, modelsDir: withoutEos(modelsDir({ 'fortune-lm': {} })) });
    });
    afterAll(async () => {
      await authServer?.stop();
    });

    it('shows an Authorization header template and sends the key over WebSocket too', { timeout: 180_000 }, async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
      const requests = recordRequests(page);
      await openGraphiQL(page, authServer.url);
      await openTab(page, 'Generate');

      // The headers editor is open, with the template to fill in.
      const headers = page.locator('.graphiql-editor-tool .graphiql-editor').last();
      await expect.poll(async () => (await headers.innerText()).replace(/\u00a0/g, ' ')).toContain('Bearer <your API key>');
      await headers.click();
      await page.keyboard.press('Control+A');
      await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${KEY}` }));
      // Monaco closes brackets and quotes as they are typed: drop what it added after the cursor.
      await page.keyboard.press('Control+Shift+End');
      await page.keyboard.press('Delete');
      // GraphiQL keeps the headers in local storage, where the WebSocket shim reads them.
      await page.waitForFunction((k) => localStorage.getItem('graphiql:headers')?.includes(k), KEY);

      const seen = await runGenerateTab(page);
      expect(seen.filter((e) => !e.final).length, JSON.stringify(seen)).toBeGreaterThanOrEqual(1);
      expect(await responseText(page)).not.toContain('UNAUTHENTICATED');
      expect(nonLocal(requests)).toEqual([]);
      await page.close();
    });
  });
});
