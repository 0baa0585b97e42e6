import DataLoader from 'dataloader';
import { inferqlError, type InferqlError } from '../errors.js';
import type { Feeds, Fetches, TensorSpec } from '../runtime/session.js';
import { type CollateOptions, groupRequests, split, stack } from './collate.js';
import { type BatchPolicy, decideBatch, type WaitingBatch } from './policy.js';

export interface BatchMetrics {
  queueMs: number;
  computeMs: number;
  batchSize: number;
}

export interface BatchResult {
  outputs: Fetches;
  metrics: BatchMetrics;
}

export interface SubmitOptions {
  /** Higher runs first within the model's queue. */
  priority?: number;
  /** Absolute time (ms since epoch) after which a still-queued request fails with TIMEOUT. */
  deadlineAt?: number;
  /** A request whose signal aborts while queued is dropped and never runs. */
  signal?: AbortSignal;
}

export interface BatcherOptions extends BatchPolicy {
  model: string;
  maxQueueSize: number;
  inputs: readonly TensorSpec[];
  outputs: readonly TensorSpec[];
  collate: CollateOptions;
  /** Runs one collated batch: the only place the model is called. */
  run: (feeds: Feeds) => Promise<Fetches>;
  onBatch?: (event: { model: string; size: number; computeMs: number; queueMs: number[] }) => void;
  onError?: (error: unknown) => void;
}

type ItemState = 'queued' | 'running' | 'done' | 'dropped';

interface Item {
  feeds: Feeds;
  priority: number;
  enqueuedAt: number;
  state: ItemState;
  reject: (error: Error) => void;
}

/** A batch DataLoader has opened, with the dispatch it handed us. */
interface OpenBatch {
  items: Item[];
  dispatch: () => void;
}

/**
 * One long-lived batcher per loaded model. DataLoader (cache off) gathers
 * concurrent requests into batches; it hands every new batch's dispatch to
 * this class, which consults the pure policy (run now / wait N ms) and runs
 * one batch at a time. Dropped requests (deadline, abort) leave their batch
 * before it runs and finish with their own error.
 */
export class ModelBatcher {
  private readonly loader: DataLoader<Item, BatchResult>;
  private readonly open: OpenBatch[] = [];
  private busy = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  /** Requests waiting (not yet running). */
  queued = 0;
  /** Counters, for metrics and tests. */
  readonly counts = { batches: 0, ran: 0, dropped: 0, rejected: 0 };

  constructor(private readonly options: BatcherOptions) {
    this.loader = new DataLoader<Item, BatchResult>((items) => this.runBatch(items), {
      cache: false,
      maxBatchSize: options.maxBatchSize,
      batchScheduleFn: (dispatch) => {
        this.open.push({ items: [], dispatch });
      },
    });
  }

  submit(feeds: Feeds, options: SubmitOptions = {}): Promise<BatchResult> {
    if (this.closed) return Promise.reject(inferqlError('MODEL_NOT_READY', `Model "${this.options.model}" is unloading.`));
    if (options.signal?.aborted) return Promise.reject(inferqlError('CANCELLED'));
    if (this.queued >= this.options.maxQueueSize) {
      this.counts.rejected++;
      const retryAfterMs = Math.max(1, this.options.maxQueueDelayMs) * Math.ceil(this.queued / this.options.maxBatchSize);
      return Promise.reject(
        inferqlError('QUEUE_FULL', `Model "${this.options.model}" has ${this.queued} requests waiting; retry in about ${retryAfterMs} ms.`, { retryAfterMs }),
      );
    }
    return new Promise<BatchResult>((resolve, reject) => {
      const item: Item = { feeds, priority: options.priority ?? 0, enqueuedAt: performance.now(), state: 'queued', reject };
      const cleanups: (() => void)[] = [];
      const settle = () => cleanups.forEach((c) => c());
      this.loader.load(item).then(
        (result) => (settle(), resolve(result)),
        (error: Error) => (settle(), reject(error)),
      );
      this.open.at(-1)!.items.push(item);
      this.queued++;
      if (options.deadlineAt !== undefined) {
        const timer = setTimeout(() => this.drop(item, inferqlError('TIMEOUT', `The deadline passed after ${Math.round(performance.now() - item.enqueuedAt)} ms in the queue.`)), Math.max(0, options.deadlineAt - Date.now()));
        cleanups.push(() => clearTimeout(timer));
      }
      if (options.signal) {
        const signal = options.signal;
        const onAbort = () => this.drop(item, inferqlError('CANCELLED'));
        signal.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => signal.removeEventListener('abort', onAbort));
      }
      this.pump();
    });
  }

  /** Stops taking requests and resolves once everything queued has run. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return !this.busy && this.queued === 0;
  }

  private drop(item: Item, error: InferqlError): void {
    if (item.state !== 'queued') return;
    item.state = 'dropped';
    this.queued--;
    this.counts.dropped++;
    item.reject(error);
    this.pump();
  }

  private waiting(batch: OpenBatch): WaitingBatch {
    let size = 0;
    let oldestAt = Number.POSITIVE_INFINITY;
    let priority = Number.NEGATIVE_INFINITY;
    for (const item of batch.items) {
      if (item.state !== 'queued') continue;
      size++;
      oldestAt = Math.min(oldestAt, item.enqueuedAt);
      priority = Math.max(priority, item.priority);
    }
    return { size, oldestAt, priority };
  }

  private pump(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Batches left with no live request are handed back to DataLoader at once; nothing runs for them.
    for (let i = this.open.length - 1; i >= 0; i--) {
      const batch = this.open[i]!;
      if (batch.items.length > 0 && batch.items.every((it) => it.state !== 'queued')) {
        this.open.splice(i, 1);
        batch.dispatch();
      }
    }
    const decision = decideBatch(this.open.map((b) => this.waiting(b)), this.busy, performance.now(), this.options);
    if (decision.kind === 'run') {
      const [batch] = this.open.splice(decision.index, 1);
      batch!.dispatch();
    } else if (decision.kind === 'wait') {
      this.timer = setTimeout(() => this.pump(), Math.max(0, Math.ceil(decision.ms)));
    } else if (this.isIdle()) {
      this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  private async runBatch(items: readonly Item[]): Promise<(BatchResult | Error)[]> {
    const results: (BatchResult | Error)[] = items.map(() => inferqlError('CANCELLED'));
    const live = items.map((item, i) => ({ item, i })).filter(({ item }) => item.state === 'queued');
    if (live.length === 0) return results;
    this.busy = true;
    this.queued -= live.length;
    for (const { item } of live) item.state = 'running';
    const startedAt = performance.now();
    try {
      const feeds = live.map(({ item }) => item.feeds);
      for (const group of groupRequests(feeds, this.options.inputs, this.options.collate)) {
        const collated = stack(feeds, group, this.options.inputs);
        const t0 = performance.now();
        try {
          const fetches = await this.options.run(collated.feeds);
          const computeMs = performance.now() - t0;
          this.counts.batches++;
          this.counts.ran += group.length;
          const parts = split(fetches, collated, this.options.outputs);
          const queueMs = group.map((m) => startedAt - live[m]!.item.enqueuedAt);
          this.options.onBatch?.({ model: this.options.model, size: group.length, computeMs, queueMs });
          group.forEach((m, j) => {
            results[live[m]!.i] = { outputs: parts[j]!, metrics: { queueMs: queueMs[j]!, computeMs, batchSize: group.length } };
          });
        } catch (error) {
          this.options.onError?.(error);
          for (const m of group) results[live[m]!.i] = inferqlError('INTERNAL');
        }
      }
    } finally {
      for (const { item } of live) item.state = 'done';
      this.busy = false;
      queueMicrotask(() => this.pump());
    }
    return results;
  }
}
