import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ModelBatcher } from '../../src/inference/batcher.js';
import type { Feeds, Fetches, TensorSpec } from '../../src/runtime/session.js';

/** The batcher's scheduling, driven by a run function the test releases by hand (no model, no sleeps). */
const spec: TensorSpec[] = [{ name: 'x', datatype: 'FP32', shape: [null, 1], dimNames: ['batch', null] }];
const row = (v: number): Feeds => ({ x: new ort.Tensor('float32', Float32Array.of(v), [1, 1]) });
const valueOf = (f: Fetches) => (f.x!.data as Float32Array)[0];

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function harness(options: { maxBatchSize?: number; maxQueueDelayMs?: number; maxQueueSize?: number } = {}) {
  const runs: number[][] = [];
  const gates: ReturnType<typeof deferred<void>>[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const batcher = new ModelBatcher({
    model: 'echo',
    maxBatchSize: options.maxBatchSize ?? 4,
    maxQueueDelayMs: options.maxQueueDelayMs ?? 0,
    preferredBatchSizes: [],
    maxQueueSize: options.maxQueueSize ?? 100,
    inputs: spec,
    outputs: spec,
    collate: { batchable: true, paddable: false },
    run: async (feeds) => {
      runs.push(Array.from(feeds.x!.data as Float32Array));
      const gate = deferred<void>();
      gates.push(gate);
      for (const w of waiters.filter((w) => runs.length >= w.n)) w.resolve();
      await gate.promise;
      return { x: feeds.x! };
    },
  });
  /** Resolves once the n-th run has started. */
  const started = (n: number) => new Promise<void>((resolve) => (runs.length >= n ? resolve() : waiters.push({ n, resolve })));
  return { batcher, runs, started, release: () => gates.shift()!.resolve() };
}

describe('ModelBatcher', { timeout: 5000 }, () => {
  it('gathers requests that arrive while a batch runs into the next batch, in priority order', async () => {
    const h = harness({ maxBatchSize: 2 });
    const first = h.batcher.submit(row(1));
    await h.started(1);
    const low = h.batcher.submit(row(2), { priority: 0 });
    const low2 = h.batcher.submit(row(3), { priority: 0 });
    const high = h.batcher.submit(row(4), { priority: 5 });
    h.release();
    await h.started(2);
    expect(h.runs).toEqual([[1], [4]]);
    h.release();
    await h.started(3);
    h.release();
    const results = await Promise.all([first, low, low2, high]);
    expect(h.runs).toEqual([[1], [4], [2, 3]]);
    expect(results.map((r) => valueOf(r.outputs))).toEqual([1, 2, 3, 4]);
    expect(results.map((r) => r.metrics.batchSize)).toEqual([1, 2, 2, 1]);
  });

  it('answers QUEUE_FULL at once when the queue is full', async () => {
    const h = harness({ maxQueueSize: 1 });
    const running = h.batcher.submit(row(1));
    await h.started(1);
    const queued = h.batcher.submit(row(2));
    await expect(h.batcher.submit(row(3))).rejects.toMatchObject({ extensions: { code: 'QUEUE_FULL', retryAfterMs: expect.any(Number) } });
    h.release();
    await h.started(2);
    h.release();
    await Promise.all([running, queued]);
    expect(h.runs).toEqual([[1], [2]]);
  });

  it('drops a request whose deadline passes in the queue; it never runs', async () => {
    const h = harness();
    const running = h.batcher.submit(row(1));
    await h.started(1);
    const late = h.batcher.submit(row(2), { deadlineAt: Date.now() + 5 });
    await expect(late).rejects.toMatchObject({ extensions: { code: 'TIMEOUT' } });
    h.release();
    await running;
    await h.batcher.close();
    expect(h.runs).toEqual([[1]]);
    expect(h.batcher.counts.dropped).toBe(1);
  });

  it('drops a request whose client aborts before its batch forms; its neighbours still run', async () => {
    const h = harness();
    const running = h.batcher.submit(row(1));
    await h.started(1);
    const controller = new AbortController();
    const gone = h.batcher.submit(row(2), { signal: controller.signal });
    const stays = h.batcher.submit(row(3));
    controller.abort();
    await expect(gone).rejects.toMatchObject({ extensions: { code: 'CANCELLED' } });
    h.release();
    await h.started(2);
    h.release();
    await Promise.all([running, stays]);
    expect(h.runs).toEqual([[1], [3]]);
  });

  it('waits up to maxQueueDelayMs for a batch to fill, and runs a full one at once', async () => {
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 60_000 });
    const all = [1, 2, 3].map((v) => h.batcher.submit(row(v)));
    await h.started(1);
    expect(h.runs).toEqual([[1, 2, 3]]);
    h.release();
    await Promise.all(all);
  });

  it('close() lets queued work finish, then refuses new work', async () => {
    const h = harness();
    const running = h.batcher.submit(row(1));
    await h.started(1);
    const queued = h.batcher.submit(row(2));
    const closed = h.batcher.close();
    await expect(h.batcher.submit(row(3))).rejects.toMatchObject({ extensions: { code: 'MODEL_NOT_READY' } });
    h.release();
    await h.started(2);
    h.release();
    await Promise.all([running, queued, closed]);
    expect(h.runs).toEqual([[1], [2]]);
  });
});
