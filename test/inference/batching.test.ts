import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelBatcher } from '../../src/inference/batcher.js';
import { modelsDir, SHIPPED_MODELS, type TestServer, startServer } from '../helpers/server.js';

/**
 * Dynamic batching against the real models: a wide window (maxQueueDelayMs)
 * makes the grouping deterministic; the model's own run counter says how many
 * session.run calls really happened.
 */
const INFER = /* GraphQL */ `
  mutation ($model: String!, $inputs: [TensorInput!]!, $deadlineMs: Int) {
    infer(model: $model, inputs: $inputs, deadlineMs: $deadlineMs) {
      outputs { name shape data }
      metrics { queueMs computeMs batchSize }
    }
  }
`;

const pixels = (seed: number) => Array.from({ length: 64 }, (_, i) => (i * 7 + seed * 13) % 17);
const digitsInput = (seed: number) => [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: pixels(seed) }];

let server: TestServer;

beforeAll(async () => {
  server = await startServer({
    modelsDir: modelsDir({
      digits: { inferql: { batching: { maxBatchSize: 4, maxQueueDelayMs: 400, maxQueueSize: 6 } } },
      'digits-slow': { from: join(SHIPPED_MODELS, 'digits'), inferql: { batching: { maxBatchSize: 64, maxQueueDelayMs: 1000, maxQueueSize: 3 } } },
      'fortune-topic': { inferql: { batching: { maxBatchSize: 8, maxQueueDelayMs: 300 } } },
    }),
  });
});

afterAll(async () => {
  await server?.stop();
});

const instance = (name: string) => server.app.services.registry.get(name)!.instance!;
const batcher = (name: string) => server.app.services.inference.batcher(instance(name)) as ModelBatcher;
const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 2));
};

describe('dynamic batching', () => {
  it('N concurrent requests within the window run in ceil(N / maxBatchSize) session runs, each caller getting its own rows', async () => {
    const alone: any[] = [];
    for (let i = 0; i < 10; i++) alone.push((await server.gql(INFER, { model: 'digits', inputs: digitsInput(i), deadlineMs: 5000 })).data.infer.outputs[0].data);
    const before = instance('digits').session.runs;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => server.gql(INFER, { model: 'digits', inputs: digitsInput(i) })));
    expect(instance('digits').session.runs - before).toBe(Math.ceil(10 / 4));
    results.forEach((res, i) => {
      expect(res.errors).toBeUndefined();
      expect(res.data.infer.outputs[0].shape).toEqual([1, 10]);
      res.data.infer.outputs[0].data.forEach((v: number, k: number) => expect(v).toBeCloseTo(alone[i][k], 5));
    });
    expect(results.map((r) => r.data.infer.metrics.batchSize).sort()).toEqual([2, 2, 4, 4, 4, 4, 4, 4, 4, 4]);
  });

  it('a bad request among good ones fails alone', async () => {
    const bad = { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: [1, 2, 3] }] };
    const results = await Promise.all([0, 1, 2, 3].map((i) => server.gql(INFER, { model: 'digits', inputs: digitsInput(i) })).concat([server.gql(INFER, bad)]));
    expect(results[4]!.errors?.[0]?.extensions?.code).toBe('BAD_TENSOR');
    for (const res of results.slice(0, 4)) {
      expect(res.errors).toBeUndefined();
      expect(res.data.infer.metrics.batchSize).toBe(4);
    }
  });

  it('a full queue answers QUEUE_FULL at once, with a retry hint', async () => {
    // digits-slow: batches of up to 64 that wait a whole second, and room for 3.
    const waiting = [1, 2, 3].map((i) => server.gql(INFER, { model: 'digits-slow', inputs: digitsInput(i) }));
    await until(() => batcher('digits-slow').queued === 3);
    const t0 = performance.now();
    const refused = await server.gql(INFER, { model: 'digits-slow', inputs: digitsInput(4) });
    expect(performance.now() - t0).toBeLessThan(500);
    expect(refused.errors?.[0]?.extensions?.code).toBe('QUEUE_FULL');
    expect(refused.errors?.[0]?.extensions?.retryAfterMs).toBeGreaterThan(0);
    const served = await Promise.all(waiting);
    expect(served.map((r) => r.data.infer.metrics.batchSize)).toEqual([3, 3, 3]);
  });

  it('a request whose deadline passes in the queue fails with TIMEOUT and never runs', async () => {
    const before = instance('digits').session.runs;
    const ranBefore = batcher('digits').counts.ran;
    const patient = server.gql(INFER, { model: 'digits', inputs: digitsInput(1) });
    const hasty = await server.gql(INFER, { model: 'digits', inputs: digitsInput(2), deadlineMs: 50 });
    expect(hasty.errors?.[0]?.extensions?.code).toBe('TIMEOUT');
    const ok = await patient;
    expect(ok.data.infer.metrics.batchSize).toBe(1);
    expect(instance('digits').session.runs - before).toBe(1);
    expect(batcher('digits').counts.ran - ranBefore).toBe(1);
  });

  it('a request whose client goes away is dropped before its batch forms', async () => {
    const before = instance('digits').session.runs;
    const droppedBefore = batcher('digits').counts.dropped;
    const controller = new AbortController();
    const gone = server.gql(INFER, { model: 'digits', inputs: digitsInput(3) }, { signal: controller.signal }).catch((e) => e);
    await until(() => batcher('digits').queued === 1);
    controller.abort();
    await gone;
    await until(() => batcher('digits').counts.dropped === droppedBefore + 1);
    await until(() => batcher('digits').queued === 0);
    expect(instance('digits').session.runs).toBe(before);
  });

  it('ragged text inputs give the same outputs batched as alone (within 1e-5)', async () => {
    const texts = ['Hi.', 'A friend in need is a friend indeed.', 'The computer crashed again and again and again, said the operator.', 'Love.', 'Science is organized knowledge.'];
    const tokenizer = instance('fortune-topic').tokenizer!;
    const inputs = texts.map((t) => {
      const ids = tokenizer.encode(t);
      return [
        { name: 'input_ids', datatype: 'INT64', shape: [1, ids.length], data: ids },
        { name: 'attention_mask', datatype: 'INT64', shape: [1, ids.length], data: ids.map(() => 1) },
      ];
    });
    const alone: any[] = [];
    for (const input of inputs) alone.push((await server.gql(INFER, { model: 'fortune-topic', inputs: input })).data.infer);
    expect(alone.every((a) => a.metrics.batchSize === 1)).toBe(true);
    const together = await Promise.all(inputs.map((input) => server.gql(INFER, { model: 'fortune-topic', inputs: input })));
    together.forEach((res, i) => {
      expect(res.data.infer.metrics.batchSize).toBe(texts.length);
      const a = alone[i].outputs[0].data as number[];
      const b = res.data.infer.outputs[0].data as number[];
      expect(b).toHaveLength(a.length);
      b.forEach((v, k) => expect(Math.abs(v - a[k]!)).toBeLessThan(1e-5));
    });
  });
});
