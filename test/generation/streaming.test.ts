import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir, type TestServer, sse, startServer, subscribeAll } from '../helpers/server.js';

const STREAM = /* GraphQL */ `
  subscription ($model: String!, $prompt: String!, $params: GenerationParams) {
    generate(model: $model, prompt: $prompt, params: $params) {
      index tokenId text finishReason
      usage { promptTokens completionTokens totalTokens }
      metrics { queueMs ttftMs tokensPerSecond totalMs }
    }
  }
`;

const GENERATE = /* GraphQL */ `
  mutation ($prompt: String!, $params: GenerationParams) {
    generate(model: "fortune-lm", prompt: $prompt, params: $params) {
      text tokenIds finishReason usage { promptTokens completionTokens } metrics { ttftMs }
    }
  }
`;

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ modelsDir: modelsDir({ 'fortune-lm': {}, digits: {} }), maxRunningSequences: 16, maxWaitingSequences: 64 });
});

afterAll(async () => {
  await server?.stop();
});

const stats = () => server.app.services.generation.stats('fortune-lm')!;

/** Resolves when `condition` holds: checked after each turn of the event loop, no fixed sleeps. */
async function until(condition: () => boolean) {
  while (!condition()) await new Promise((r) => setImmediate(r));
}

describe('generate subscription', () => {
  // A failed race test must not leave the loop held for the next one.
  afterEach(() => server.app.services.generation.limitTurns('fortune-lm', null));

  it('streams one event per token; the last carries finishReason, usage and metrics; joins to the mutation text', async () => {
    const params = { temperature: 0, maxTokens: 12, repetitionPenalty: 1 };
    const { events, errors } = await subscribeAll(server.ws(), STREAM, { model: 'fortune-lm', prompt: 'The meaning of life is', params });
    expect(errors).toEqual([]);
    const stream = events.map((e) => e.generate);
    expect(stream.map((e) => e.index)).toEqual(stream.map((_, i) => i));
    const last = stream.at(-1)!;
    expect(['STOP', 'LENGTH']).toContain(last.finishReason);
    expect(stream.slice(0, -1).every((e) => e.finishReason === null && e.usage === null)).toBe(true);
    expect(last.usage.completionTokens).toBe(stream.length);
    expect(last.usage.totalTokens).toBe(last.usage.promptTokens + stream.length);
    expect(last.metrics.ttftMs).toBeGreaterThan(0);
    // Decode steps run in the model's worker thread: the event loop's own session never ran one.
    expect(server.app.services.registry.ready('fortune-lm').session.runs).toBe(0);
    const whole = await server.gql(GENERATE, { prompt: 'The meaning of life is', params });
    expect(whole.errors).toBeUndefined();
    expect(whole.data.generate.text).toBe(stream.map((e) => e.text).join(''));
    expect(whole.data.generate.tokenIds).toEqual(stream.map((e) => e.tokenId));
  });

  it('maxTokens ends with LENGTH after exactly maxTokens tokens', async () => {
    const res = await server.gql(GENERATE, { prompt: 'A computer', params: { temperature: 0.9, seed: 3, maxTokens: 5, repetitionPenalty: 1 } });
    // A sampled sequence could draw EOS early; seed 3 is checked not to.
    expect(res.data.generate.finishReason).toBe('LENGTH');
    expect(res.data.generate.usage.completionTokens).toBe(5);
  });

  it('a stop sequence ends with STOP_SEQUENCE and is not emitted', async () => {
    const free = await server.gql(GENERATE, { prompt: 'Love is', params: { temperature: 0, maxTokens: 30, repetitionPenalty: 1 } });
    const text: string = free.data.generate.text;
    // Stop on a piece of what the model writes anyway, two characters past its start.
    const stop = text.trim().slice(2, 5);
    expect(stop.length).toBe(3);
    const stopped = await server.gql(GENERATE, { prompt: 'Love is', params: { temperature: 0, maxTokens: 30, repetitionPenalty: 1, stop: [stop] } });
    expect(stopped.data.generate.finishReason).toBe('STOP_SEQUENCE');
    expect(stopped.data.generate.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(stopped.data.generate.text).not.toContain(stop);
  });

  it('the same seed gives the same text, alone or batched with others', async () => {
    const params = { temperature: 1, topK: 50, topP: 0.95, seed: 1234, maxTokens: 20 };
    const alone = await server.gql(GENERATE, { prompt: 'Never trust a', params });
    const crowd = await Promise.all([
      server.gql(GENERATE, { prompt: 'Never trust a', params }),
      ...['A', 'The best way to', 'Why'].map((prompt) => server.gql(GENERATE, { prompt, params: { ...params, seed: 99 } })),
      server.gql(GENERATE, { prompt: 'Never trust a', params }),
    ]);
    expect(crowd[0]!.data.generate.tokenIds).toEqual(alone.data.generate.tokenIds);
    expect(crowd.at(-1)!.data.generate.tokenIds).toEqual(alone.data.generate.tokenIds);
    const other = await server.gql(GENERATE, { prompt: 'Never trust a', params: { ...params, seed: 4321 } });
    expect(other.data.generate.tokenIds).not.toEqual(alone.data.generate.tokenIds);
  });

  it('20 concurrent streams all complete with the right token counts', async () => {
    const client = server.ws();
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        subscribeAll(client, STREAM, { model: 'fortune-lm', prompt: `Fortune number ${i}:`, params: { temperature: 0.8, seed: i, maxTokens: 5 + i, repetitionPenalty: 1.1 } }),
      ),
    );
    runs.forEach(({ events, errors }, i) => {
      expect(errors).toEqual([]);
      const stream = events.map((e) => e.generate);
      const last = stream.at(-1)!;
      expect(last.usage.completionTokens).toBe(stream.length);
      expect(stream.map((e) => e.index)).toEqual(stream.map((_, k) => k));
      if (last.finishReason === 'LENGTH') expect(stream.length).toBe(5 + i);
      else expect(last.finishReason).toBe('STOP');
    });
    expect(stats()).toMatchObject({ running: 0, waiting: 0, live: [] });
  });

  // The worker runs ahead of delivery, so a stream could end before its client's "complete"
  // arrives. Holding the scheduler after a few turns makes "it left while still running" certain.
  it('unsubscribing after 3 tokens takes the sequence out of the batch within one step', async () => {
    const client = server.ws();
    const before = stats();
    server.app.services.generation.limitTurns('fortune-lm', 8);
    // A long stream keeps the batch stepping while the short one leaves.
    const long = subscribeAll(client, STREAM, { model: 'fortune-lm', prompt: 'Keep going:', params: { temperature: 1, seed: 5, maxTokens: 40, repetitionPenalty: 1 } });
    let received = 0;
    let shortId = -1;
    await new Promise<void>((resolve) => {
      const unsubscribe = client.subscribe(
        { query: STREAM, variables: { model: 'fortune-lm', prompt: 'Short one:', params: { temperature: 1, seed: 6, maxTokens: 40, repetitionPenalty: 1 } } },
        {
          next: () => {
            if (++received !== 3) return;
            // Leave only once the loop is held, so the sequence is certainly still in the batch
            // (on a slow machine delivery can keep pace with the worker).
            void until(() => stats().held).then(() => {
              // The newest live sequence is the short one (sequence ids grow in submission order).
              shortId = Math.max(...stats().live);
              unsubscribe();
              resolve();
            });
          },
          error: () => resolve(),
          complete: () => resolve(),
        },
      );
    });
    expect(stats().live).toContain(shortId);
    // The "complete" message reaches the server and the worker takes the cancel while held.
    await until(() => stats().cancelled > before.cancelled);
    const at = stats().steps;
    expect(stats().live).toContain(shortId);
    server.app.services.generation.limitTurns('fortune-lm', null);
    // One step later it is gone from the running batch, the waiting queue and the KV cache.
    await until(() => stats().steps > at || stats().live.length === 0);
    expect(stats().live).not.toContain(shortId);
    expect(stats().maxCancelLagSteps).toBeLessThanOrEqual(1);
    const { events } = await long;
    expect(events.at(-1)!.generate.finishReason).toMatch(/STOP|LENGTH/);
  });

  it('aborting an SSE stream cancels its sequence', async () => {
    const controller = new AbortController();
    let count = 0;
    const before = stats();
    server.app.services.generation.limitTurns('fortune-lm', 6);
    await expect(
      (async () => {
        for await (const event of sse(server.url, STREAM, { model: 'fortune-lm', prompt: 'Over SSE:', params: { temperature: 1, seed: 1, maxTokens: 40, repetitionPenalty: 1 } }, { signal: controller.signal })) {
          expect(event.errors).toBeUndefined();
          if (++count === 3) controller.abort();
        }
      })(),
    ).rejects.toThrow(/abort/i);
    await until(() => stats().cancelled > before.cancelled);
    server.app.services.generation.limitTurns('fortune-lm', null);
    await until(() => stats().live.length === 0);
    expect(stats()).toMatchObject({ running: 0, waiting: 0, live: [] });
    expect(stats().maxCancelLagSteps).toBeLessThanOrEqual(1);
    // It stopped where it was held: 6 turns give at most 7 tokens (the first turn prefills and decodes), not its 40.
    expect(stats().tokens - before.tokens).toBeLessThanOrEqual(7);
  });

  it('rejects bad parameters, prompts and models before any work', async () => {
    const steps = stats().steps;
    const cases: [Record<string, unknown>, string][] = [
      [{ model: 'fortune-lm', prompt: 'x', params: { temperature: -1 } }, 'BAD_GENERATION_PARAMS'],
      [{ model: 'fortune-lm', prompt: 'x', params: { topP: 0 } }, 'BAD_GENERATION_PARAMS'],
      [{ model: 'fortune-lm', prompt: 'x', params: { maxTokens: 100_000 } }, 'BAD_GENERATION_PARAMS'],
      [{ model: 'fortune-lm', prompt: 'word '.repeat(2000) }, 'BAD_GENERATION_PARAMS'],
      [{ model: 'digits', prompt: 'x' }, 'MODEL_TASK_MISMATCH'],
      [{ model: 'nope', prompt: 'x' }, 'MODEL_NOT_FOUND'],
    ];
    for (const [variables, code] of cases) {
      const ws = await subscribeAll(server.ws(), STREAM, variables);
      expect((ws.errors[0] as any)?.extensions?.code ?? (ws.errors[0] as any)?.[0]?.extensions?.code).toBe(code);
      const http = await server.gql(GENERATE.replace('"fortune-lm"', '$model').replace('mutation (', 'mutation ($model: String!, '), variables);
      expect(http.errors?.[0]?.extensions?.code).toBe(code);
    }
    expect(stats().steps).toBe(steps);
  });
});

describe('queue bound', () => {
  it('answers QUEUE_FULL when every slot and the waiting queue are taken', async () => {
    const small = await startServer({ modelsDir: modelsDir({ 'fortune-lm': {} }), maxRunningSequences: 1, maxWaitingSequences: 1 });
    try {
      const client = small.ws();
      const params = { temperature: 1, seed: 2, maxTokens: 40, repetitionPenalty: 1 };
      const first = subscribeAll(client, STREAM, { model: 'fortune-lm', prompt: 'one', params });
      while ((small.app.services.generation.stats('fortune-lm')?.running ?? 0) < 1) await new Promise((r) => setTimeout(r, 2));
      const second = subscribeAll(client, STREAM, { model: 'fortune-lm', prompt: 'two', params });
      while ((small.app.services.generation.stats('fortune-lm')?.waiting ?? 0) < 1) await new Promise((r) => setTimeout(r, 2));
      const third = await small.gql(GENERATE, { prompt: 'three', params });
      expect(third.errors?.[0]?.extensions?.code).toBe('QUEUE_FULL');
      expect((await first).errors).toEqual([]);
      expect((await second).errors).toEqual([]);
    } finally {
      await small.stop();
    }
  });
});

describe('generation metrics', () => {
  it('/metrics counts generated and prompt tokens and times first and following tokens (vLLM names)', async () => {
    const scrape = async () => (await fetch(server.url.replace('/graphql', '/metrics'))).text();
    const value = (text: string, pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
    const before = await scrape();
    const res = await server.gql(GENERATE, { prompt: 'Counting tokens', params: { temperature: 0, maxTokens: 7, repetitionPenalty: 1 } });
    const { completionTokens, promptTokens } = res.data.generate.usage;
    const after = await scrape();
    const delta = (pattern: RegExp) => value(after, pattern) - value(before, pattern);
    expect(delta(/^vllm:generation_tokens_total\{model_name="fortune-lm"\} (\d+)/m)).toBe(res.data.generate.tokenIds.length);
    expect(delta(/^vllm:prompt_tokens_total\{model_name="fortune-lm"\} (\d+)/m)).toBe(promptTokens);
    expect(delta(/^vllm:time_to_first_token_seconds_count\{model_name="fortune-lm"\} (\d+)/m)).toBe(1);
    expect(delta(/^vllm:time_per_output_token_seconds_count\{model_name="fortune-lm"\} (\d+)/m)).toBe(completionTokens - 1);
  });
});
