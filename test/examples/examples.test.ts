import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchChromium, nonLocal, recordRequests } from '../browser/chromium.js';
import { modelsDir, ROOT, startServer, type TestServer, withoutEos } from '../helpers/server.js';

/** Runs a Node example as a user would (`node examples/…`), collecting its output. */
function runExample(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('examples against a real server', () => {
  let server: TestServer;
  let browser: Browser | undefined;

  beforeAll(async () => {
    // fortune-lm without EOS: the browser example samples, and a stream cut short by EOS would prove little.
    server = await startServer({ modelsDir: withoutEos(modelsDir({ 'fortune-lm': {} })) });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('examples/stream-generation.mjs streams the same text the generate mutation returns', { timeout: 120_000 }, async () => {
    const params = { maxTokens: 24, temperature: 0 };
    const expected = await server.gql('mutation($p: GenerationParams) { generate(model: "fortune-lm", prompt: "Fortune favours", params: $p) { text usage { completionTokens } } }', {
      p: params,
    });
    const run = await runExample(['examples/stream-generation.mjs', '--url', server.wsUrl, '--max-tokens', '24', '--temperature', '0', 'Fortune', 'favours']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(expected.data.generate.text);
    expect(run.stderr).toMatch(new RegExp(`\\[${expected.data.generate.usage.completionTokens} tokens, (STOP|LENGTH), first token \\d+ ms, [\\d.]+ tokens/s\\]`));
  });

  it('examples/stream-generation.mjs reports a bad request with its error code and exit status 1', { timeout: 60_000 }, async () => {
    const run = await runExample(['examples/stream-generation.mjs', '--model', 'no-such-model', 'Hello'], { INFERQL_URL: server.url });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('MODEL_NOT_FOUND');
  });

  it.skipIf(!HAVE_CHROMIUM)('examples/browser/stream-generation.html streams tokens into the page, opened from file://', { timeout: 120_000 }, async () => {
    browser = await launchChromium();
    const page = await browser.newPage();
    const requests = recordRequests(page);
    const file = pathToFileURL(join(ROOT, 'examples', 'browser', 'stream-generation.html'));
    file.searchParams.set('server', server.url.replace(/\/graphql$/, ''));
    await page.goto(file.href);
    await expect.poll(() => page.locator('#run').isEnabled(), { timeout: 30_000 }).toBe(true);

    // Count every distinct token count the output shows, as the DOM changes.
    await page.evaluate(() => {
      const seen: number[] = [];
      (window as unknown as { seen: number[] }).seen = seen;
      const output = document.getElementById('output')!;
      new MutationObserver(() => {
        const n = Number(output.dataset.tokens ?? 0);
        if (n > 0 && seen.at(-1) !== n) seen.push(n);
      }).observe(output, { attributes: true, childList: true, characterData: true, subtree: true });
    });
    await page.click('#run');
    await expect.poll(() => page.locator('#status').innerText(), { timeout: 60_000 }).toMatch(/\d+ tokens, (STOP|LENGTH), [\d.]+ tokens\/s/);
    const seen = await page.evaluate(() => (window as unknown as { seen: number[] }).seen);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect((await page.locator('#output').innerText()).length).toBeGreaterThan(0);
    expect(nonLocal(requests)).toEqual([]);
  });
});
