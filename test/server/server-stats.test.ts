import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelsDir, startServer, type TestServer, withoutEos } from '../helpers/server.js';

const STATS = `subscription {
  serverStats {
    at intervalMs tokensPerSecond requestsPerSecond openSubscriptions
    models { name task status queueDepth running batchSize batches requestsPerSecond tokensPerSecond tokensTotal }
    recentJobs(first: 5) { id model status }
  }
}`;

interface ModelStats {
  name: string;
  task: string;
  status: string;
  queueDepth: number;
  running: number;
  batchSize: number | null;
  batches: number;
  requestsPerSecond: number;
  tokensPerSecond: number;
  tokensTotal: number;
}
interface Sample {
  at: string;
  intervalMs: number;
  tokensPerSecond: number;
  requestsPerSecond: number;
  openSubscriptions: number;
  models: ModelStats[];
  recentJobs: { id: string; model: string; status: string }[];
}

/** Streams serverStats samples into an array; `until` resolves at the first sample that satisfies a predicate. */
function watchStats(client: Client) {
  const samples: Sample[] = [];
  const waiters: { test: (s: Sample) => boolean; resolve: (s: Sample) => void }[] = [];
  const stop = client.subscribe<{ serverStats: Sample }>(
    { query: STATS },
    {
      next: ({ data, errors }) => {
        if (errors) throw new Error(JSON.stringify(errors));
        const sample = data!.serverStats;
        samples.push(sample);
        for (const w of [...waiters]) {
          if (w.test(sample)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(sample);
          }
        }
      },
      error: () => {},
      complete: () => {},
    },
  );
  return {
    samples,
    stop,
    until: (test: (s: Sample) => boolean) =>
      new Promise<Sample>((resolve) => {
        const found = samples.find(test);
        if (found) resolve(found);
        else waiters.push({ test, resolve });
      }),
    /** Resolves with the `n`th sample from now on. */
    next: (n = 1) => {
      const target = samples.length + n;
      return new Promise<Sample>((resolve) => waiters.push({ test: () => samples.length >= target, resolve }));
    },
  };
}

const model = (s: Sample, name: string) => s.models.find((m) => m.name === name)!;

describe('serverStats', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({
      statsIntervalMs: 100,
      maxRunningSequences: 1,
      // fortune-lm without EOS: each generation runs its full maxTokens, long enough for several samples.
      modelsDir: withoutEos(
        modelsDir({
          'fortune-lm': {},
          'fortune-topic': { inferql: { batching: { maxBatchSize: 16, maxQueueDelayMs: 200 } } },
        }),
      ),
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('answers a query with every model and its status', async () => {
    const res = await server.gql('{ serverStats { intervalMs models { name task status queueDepth } throughput(last: 5) { at tokensPerSecond } } }');
    expect(res.errors).toBeUndefined();
    expect(res.data.serverStats.intervalMs).toBe(100);
    expect(res.data.serverStats.models).toEqual([
      { name: 'fortune-lm', task: 'TEXT_GENERATION', status: 'READY', queueDepth: 0 },
      { name: 'fortune-topic', task: 'CLASSIFICATION', status: 'READY', queueDepth: 0 },
    ]);
    expect(res.data.serverStats.throughput.length).toBeLessThanOrEqual(5);
  });

  it('streams a sample at once and then one per interval, with one watcher per subscription', async () => {
    const client = server.ws();
    const stats = watchStats(client);
    const first = await stats.until(() => true);
    expect(first.models.map((m) => m.name)).toEqual(['fortune-lm', 'fortune-topic']);
    await stats.next(3);
    const times = stats.samples.map((s) => Date.parse(s.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(server.app.services.stats.watcherCount).toBe(1);
    expect(stats.samples.at(-1)!.openSubscriptions).toBeGreaterThanOrEqual(1);
    stats.stop();
    await vi.waitFor(() => expect(server.app.services.stats.watcherCount).toBe(0));
  });

  it('reports batch sizes and requests/s of concurrent classify requests', async () => {
    const stats = watchStats(server.ws());
    await stats.until(() => true);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => server.gql(`mutation { classify(model: "fortune-topic", inputs: [{ text: "Fortune ${i}" }]) { labels { label } } }`)),
    );
    expect(results.every((r) => !r.errors)).toBe(true);
    // The first sample taken after the requests finished counts them.
    const after = await stats.until((s) => model(s, 'fortune-topic').batches > 0);
    const topic = model(after, 'fortune-topic');
    expect(topic.requestsPerSecond).toBeGreaterThan(0);
    expect(topic.batchSize).toBeGreaterThan(1);
    expect(after.requestsPerSecond).toBeCloseTo(topic.requestsPerSecond);
    // Then it goes quiet again.
    const quiet = await stats.until((s) => Date.parse(s.at) > Date.parse(after.at) && model(s, 'fortune-topic').batches === 0);
    expect(model(quiet, 'fortune-topic').batchSize).toBeNull();
    stats.stop();
  });

  it('reports tokens/s, running and waiting generations while they run', async () => {
    const client = server.ws();
    const stats = watchStats(client);
    await stats.until(() => true);
    const query = 'subscription($p: String!) { generate(model: "fortune-lm", prompt: $p, params: { maxTokens: 200, temperature: 0 }) { index finishReason } }';
    // One slot (maxRunningSequences: 1): the second generation waits for the first.
    let firstToken!: () => void;
    const gotToken = new Promise<void>((r) => (firstToken = r));
    const runs = ['Fortune favours the bold', 'Luck is what happens'].map(
      (p) =>
        new Promise<void>((resolve) => {
          client.subscribe({ query, variables: { p } }, { next: () => firstToken(), error: resolve, complete: resolve });
        }),
    );
    await gotToken;
    const busy = await stats.until((s) => model(s, 'fortune-lm').running === 1 && model(s, 'fortune-lm').queueDepth === 1);
    expect(busy.models.find((m) => m.name === 'fortune-topic')!.running).toBe(0);
    const generating = await stats.until((s) => model(s, 'fortune-lm').tokensPerSecond > 0);
    expect(generating.tokensPerSecond).toBe(model(generating, 'fortune-lm').tokensPerSecond);
    expect(model(generating, 'fortune-lm').batchSize).toBeGreaterThanOrEqual(1);
    await Promise.all(runs);
    const done = await stats.next(2);
    expect(model(done, 'fortune-lm')).toMatchObject({ running: 0, queueDepth: 0 });
    expect(model(done, 'fortune-lm').tokensTotal).toBeGreaterThanOrEqual(2);
    // The history the chart starts from has the busy samples.
    const history = await server.gql('{ serverStats { throughput { tokensPerSecond } } }');
    expect(history.data.serverStats.throughput.some((p: { tokensPerSecond: number }) => p.tokensPerSecond > 0)).toBe(true);
    stats.stop();
  });

  it('serves the status page and its assets from the server itself', async () => {
    const base = server.url.replace(/\/graphql$/, '');
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((u) => !u.startsWith('data:'));
    expect(assets).toEqual(expect.arrayContaining(['/status/status.css', '/status/graphql-ws.js', '/status/status.js']));
    for (const asset of assets.filter((u) => u.startsWith('/status/'))) {
      const res = await fetch(`${base}${asset}`);
      expect(res.status, asset).toBe(200);
      expect((await res.text()).length, asset).toBeGreaterThan(100);
    }
    // Links to the other pages stay on this server; graphql-ws is the real browser build.
    expect(assets.every((u) => u.startsWith('/'))).toBe(true);
    expect(await (await fetch(`${base}/status/graphql-ws.js`)).text()).toContain('graphqlWs');
    expect((await fetch(`${base}/status/nope.js`)).status).toBe(404);
  });

  it('lists recent jobs', async () => {
    const stats = watchStats(server.ws());
    const submitted = await server.gql('mutation { submitJob(input: { classify: { model: "fortune-topic", inputs: [{ text: "A stitch in time" }] } }) { id } }');
    const id = submitted.data.submitJob.id;
    const withJob = await stats.until((s) => s.recentJobs.some((j) => j.id === id));
    expect(withJob.recentJobs[0]).toMatchObject({ id, model: 'fortune-topic' });
    stats.stop();
  });
});

describe('serverStats with API keys', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ apiKeys: 'infer-only-key=infer,jobs-key-0001=infer+jobs', modelsDir: modelsDir({ 'fortune-topic': {} }) });
    await server.gql('mutation { submitJob(input: { classify: { model: "fortune-topic", inputs: [{ text: "x" }] } }) { id } }', undefined, {
      headers: { authorization: 'Bearer jobs-key-0001' },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('needs a key, and shows jobs only to a key with the jobs scope (its own)', async () => {
    const query = '{ serverStats { models { name } recentJobs { model } } }';
    expect((await server.gql(query)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const inferOnly = await server.gql(query, undefined, { headers: { authorization: 'Bearer infer-only-key' } });
    expect(inferOnly.data.serverStats).toEqual({ models: [{ name: 'fortune-topic' }], recentJobs: [] });
    const withJobs = await server.gql(query, undefined, { headers: { authorization: 'Bearer jobs-key-0001' } });
    expect(withJobs.data.serverStats.recentJobs).toEqual([{ model: 'fortune-topic' }]);
  });
});
