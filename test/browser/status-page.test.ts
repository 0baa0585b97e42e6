import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir, startServer, type TestServer, withoutEos } from '../helpers/server.js';
import { HAVE_CHROMIUM, launchChromium, nonLocal, recordRequests, screenshot } from './chromium.js';

const figure = async (page: Page, id: string) => Number(await page.locator(`#${id}`).innerText());

async function openStatusPage(page: Page, server: TestServer): Promise<void> {
  await page.goto(server.url.replace(/\/graphql$/, '/'), { waitUntil: 'load' });
}

describe.skipIf(!HAVE_CHROMIUM)('status page in chromium', () => {
  let browser: Browser;
  let server: TestServer;

  beforeAll(async () => {
    [browser, server] = await Promise.all([launchChromium(), startServer({ statsIntervalMs: 250, modelsDir: withoutEos(modelsDir({ digits: {}, 'fortune-lm': {}, 'fortune-topic': {} })) })]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows models, jobs and live figures; its try-it box streams a generation and moves tokens/s', { timeout: 180_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const requests = recordRequests(page);
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await openStatusPage(page, server);

    await expect.poll(() => page.locator('#connection').getAttribute('data-state'), { timeout: 30_000 }).toBe('open');
    for (const model of ['digits', 'fortune-lm', 'fortune-topic']) {
      await expect.poll(() => page.locator(`tr[data-model="${model}"] .badge`).innerText()).toBe('READY');
    }

    // A job shows up in the recent jobs table.
    const submitted = await server.gql(`mutation { submitJob(input: { classify: { model: "fortune-topic", inputs: [{ text: "Luck favours the bold." }] } }) { id } }`);
    const jobId = submitted.data.submitJob.id as string;
    await expect.poll(() => page.locator(`tr[data-job="${jobId}"] .badge`).innerText(), { timeout: 30_000 }).toBe('SUCCEEDED');

    // Idle: nothing generates, so tokens/s reads 0.
    await expect.poll(() => figure(page, 'tokens-per-second'), { timeout: 30_000 }).toBe(0);

    // Some classify traffic for the requests/s column and the chart.
    let load = true;
    const traffic = (async () => {
      while (load) {
        await Promise.all(
          Array.from({ length: 4 }, () => server.gql(`mutation { classify(model: "fortune-topic", inputs: [{ text: "A penny saved is a penny earned." }]) { labels { label } } }`)),
        );
      }
    })();

    await page.selectOption('#try-model', 'fortune-lm');
    await page.fill('#try-max-tokens', '200');
    await page.fill('#try-prompt', 'Good things come to those who');
    await page.click('#try-run');

    // Tokens arrive one after another in the output…
    const tokens = () => page.locator('#try-output').getAttribute('data-tokens').then(Number);
    await expect.poll(tokens, { timeout: 60_000 }).toBeGreaterThanOrEqual(1);
    const first = await tokens();
    await expect.poll(tokens, { timeout: 60_000 }).toBeGreaterThan(first);
    // …and the server's own tokens/s figure moves off zero.
    await expect.poll(() => figure(page, 'tokens-per-second'), { timeout: 30_000 }).toBeGreaterThan(0);
    await expect.poll(() => figure(page, 'requests-per-second'), { timeout: 30_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.locator('#chart polyline.tokens').count()).toBe(1);
    await screenshot(page, 'status-page');

    // The generation finishes with its figures.
    await expect.poll(() => page.locator('#try-info').innerText(), { timeout: 120_000 }).toMatch(/tok\/s/);
    await expect.poll(() => page.locator('#try-run').innerText(), { timeout: 120_000 }).toBe('Generate');
    load = false;
    await traffic;

    expect(pageErrors).toEqual([]);
    expect(nonLocal(requests)).toEqual([]);
    await page.close();
  });

  describe('with API keys on', () => {
    const KEY = 'status-page-key-1';
    let authServer: TestServer;

    beforeAll(async () => {
      authServer = await startServer({ apiKeys: `${KEY}=infer`, modelsDir: modelsDir({ digits: {} }), statsIntervalMs: 250 });
    });
    afterAll(async () => {
      await authServer?.stop();
    });

    it('asks for a key, then connects with it', { timeout: 120_000 }, async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const requests = recordRequests(page);
      await openStatusPage(page, authServer);
      await expect.poll(() => page.locator('#key-form').isVisible(), { timeout: 30_000 }).toBe(true);
      expect(await page.locator('tr[data-model]').count()).toBe(0);

      await page.fill('#api-key', KEY);
      await page.click('#key-form button');
      await expect.poll(() => page.locator('tr[data-model="digits"] .badge').innerText(), { timeout: 30_000 }).toBe('READY');
      expect(await page.locator('#connection').getAttribute('data-state')).toBe('open');
      expect(await page.locator('#key-form').isVisible()).toBe(false);
      // The key stays in this browser for the next visit.
      expect(await page.evaluate(() => localStorage.getItem('inferql:apiKey'))).toBe(KEY);
      expect(nonLocal(requests)).toEqual([]);
      await page.close();
    });
  });
});
