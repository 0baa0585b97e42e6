import type { GenerationService } from './generation/service.js';
import type { InferenceService } from './inference/service.js';
import type { Metrics } from './metrics.js';
import type { ModelTask } from './models/manifest.js';
import { type ModelRegistry, type ModelStatus, STATUS_RANK } from './models/registry.js';

/** One model's load, as seen over the last sampling interval. */
export interface ModelStats {
  name: string;
  status: ModelStatus;
  task: ModelTask | null;
  /** Requests waiting in the model's batcher plus generations waiting for a decode slot. */
  queueDepth: number;
  /** Sequences in the decode batch now (generation models). */
  running: number;
  /** Average batch over the interval: requests per session.run, or tokens per decode step; null when nothing ran. */
  batchSize: number | null;
  /** session.run calls (tensor and classification models) or decode steps (generation) in the interval. */
  batches: number;
  /** Finished infer/classify requests per second (success or failure). */
  requestsPerSecond: number;
  /** Generated tokens per second. */
  tokensPerSecond: number;
  /** Tokens generated since the model loaded. */
  tokensTotal: number;
}

/** What the process is doing: one sample per interval. */
export interface StatsSample {
  at: Date;
  intervalMs: number;
  uptimeSeconds: number;
  tokensPerSecond: number;
  requestsPerSecond: number;
  openSubscriptions: number;
  models: ModelStats[];
}

export interface ThroughputPoint {
  at: Date;
  tokensPerSecond: number;
  requestsPerSecond: number;
}

export interface StatsSources {
  registry: ModelRegistry;
  inference: Pick<InferenceService, 'queues'>;
  generation: Pick<GenerationService, 'allStats'>;
  metrics: Metrics;
  /** Distributed mode: every live worker's latest figures, merged; they replace this process's own in samples. */
  cluster?: () => Promise<ModelStats[]>;
}

export interface StatsOptions {
  intervalMs: number;
  /** Points of throughput history kept for the chart (default: 5 minutes' worth). */
  historySize?: number;
}

/** Cumulative counters at one instant, per model; rates are the difference of two of these. */
interface Counters {
  at: number;
  requests: Map<string, number>;
  runs: Map<string, number>;
  inferences: Map<string, number>;
  tokens: Map<string, number>;
  steps: Map<string, number>;
}

async function byModel(metric: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> }): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const { labels, value } of (await metric.get()).values) {
    const model = String(labels.model ?? labels.model_name ?? '');
    out.set(model, (out.get(model) ?? 0) + value);
  }
  return out;
}

/** The growth of a cumulative counter; a counter that went down was reset (model reloaded), so it counts from zero. */
function growth(now: number | undefined, before: number | undefined): number {
  const n = now ?? 0;
  const b = before ?? 0;
  return n >= b ? n - b : n;
}

/**
 * Samples the server's own counters every `intervalMs` (Prometheus counters for
 * infer/classify, scheduler stats for generation) into rates per model, keeps a
 * few minutes of throughput history, and hands samples to watchers. Figures
 * are this process's only.
 */
export class StatsService {
  private readonly startedAt = Date.now();
  private previous: Counters | null = null;
  private latestSample: StatsSample | null = null;
  /** This process's own models in the latest sample (what a worker tells the others). */
  private local: ModelStats[] = [];
  private readonly points: ThroughputPoint[] = [];
  /** Each watcher's delivery, and how to end it. */
  private readonly watchers = new Map<(s: StatsSample) => void, () => void>();
  private readonly timer: NodeJS.Timeout;
  private sampling: Promise<StatsSample> | null = null;
  readonly intervalMs: number;
  private readonly historySize: number;

  constructor(
    private readonly sources: StatsSources,
    options: StatsOptions,
  ) {
    this.intervalMs = options.intervalMs;
    this.historySize = options.historySize ?? Math.ceil(300_000 / options.intervalMs);
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** The last sample, or a first one taken now. */
  async latest(): Promise<StatsSample> {
    const sample = this.latestSample ?? (await this.sample());
    // Rates belong to the interval, but a model's status is read now: a sample taken while a
    // model loaded must not say LOADING after /ready says it is ready.
    const { registry } = this.sources;
    return { ...sample, models: sample.models.map((m) => ({ ...m, status: registry.get(m.name)?.status ?? m.status })) };
  }

  /** This process's own per-model figures from the latest sample. */
  localModels(): ModelStats[] {
    return this.local;
  }

  /** Throughput of the last `limit` intervals, oldest first. */
  history(limit = this.historySize): ThroughputPoint[] {
    return this.points.slice(-Math.max(0, limit));
  }

  /**
   * The latest sample at once, then each new one until `signal` aborts or the
   * consumer returns. A slow consumer gets the newest sample, never a backlog.
   */
  watch(signal?: AbortSignal): AsyncIterableIterator<StatsSample> {
    let pending: StatsSample | null = null;
    let waiting: ((r: IteratorResult<StatsSample>) => void) | null = null;
    let done = false;
    const deliver = (sample: StatsSample) => {
      if (done) return;
      if (waiting) {
        const w = waiting;
        waiting = null;
        w({ value: sample, done: false });
      } else pending = sample;
    };
    const finish = () => {
      if (done) return;
      done = true;
      this.watchers.delete(deliver);
      signal?.removeEventListener('abort', finish);
      waiting?.({ value: undefined, done: true });
      waiting = null;
    };
    this.watchers.set(deliver, finish);
    signal?.addEventListener('abort', finish, { once: true });
    if (signal?.aborted) finish();
    void this.latest().then((s) => {
      if (pending === null) deliver(s);
    });
    const iterator: AsyncIterableIterator<StatsSample> = {
      next: () => {
        if (pending) {
          const value = pending;
          pending = null;
          return Promise.resolve({ value, done: false });
        }
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (waiting = resolve));
      },
      return: () => {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Watchers now listening (for tests and the metrics page). */
  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Stops sampling and ends every watcher. */
  close(): void {
    clearInterval(this.timer);
    for (const finish of [...this.watchers.values()]) finish();
  }

  private async tick(): Promise<void> {
    const sample = await this.sample();
    this.points.push({ at: sample.at, tokensPerSecond: sample.tokensPerSecond, requestsPerSecond: sample.requestsPerSecond });
    if (this.points.length > this.historySize) this.points.splice(0, this.points.length - this.historySize);
    for (const watcher of [...this.watchers.keys()]) watcher(sample);
  }

  /** Takes a sample: rates since the previous one. Concurrent callers share one. */
  sample(): Promise<StatsSample> {
    this.sampling ??= this.takeSample().finally(() => (this.sampling = null));
    return this.sampling;
  }

  private async readCounters(): Promise<Counters> {
    const { metrics, generation } = this.sources;
    const [success, failure, runs, inferences] = await Promise.all([
      byModel(metrics.requestSuccess),
      byModel(metrics.requestFailure),
      byModel(metrics.execCount),
      byModel(metrics.inferenceCount),
    ]);
    const requests = new Map(success);
    for (const [model, n] of failure) requests.set(model, (requests.get(model) ?? 0) + n);
    const tokens = new Map<string, number>();
    const steps = new Map<string, number>();
    for (const [model, s] of Object.entries(generation.allStats())) {
      tokens.set(model, s.tokens);
      steps.set(model, s.steps);
    }
    return { at: performance.now(), requests, runs, inferences, tokens, steps };
  }

  private async takeSample(): Promise<StatsSample> {
    const { registry, inference, generation, metrics } = this.sources;
    const now = await this.readCounters();
    const before = this.previous;
    this.previous = now;
    const seconds = before ? Math.max(1e-3, (now.at - before.at) / 1000) : 0;
    const rate = (n: number) => (seconds > 0 ? n / seconds : 0);
    const queued = new Map(inference.queues().map((q) => [q.name, q.queued]));
    const sequences = generation.allStats();

    const local = registry.list().map((entry): ModelStats => {
      const name = entry.name;
      const seq = sequences[name];
      const task = entry.manifest?.task ?? null;
      let batchSize: number | null = null;
      let batches = 0;
      let tokensPerSecond = 0;
      let requestsPerSecond = 0;
      if (before) {
        requestsPerSecond = rate(growth(now.requests.get(name), before.requests.get(name)));
        if (seq) {
          const steps = growth(now.steps.get(name), before.steps.get(name));
          const tokens = growth(now.tokens.get(name), before.tokens.get(name));
          batches = steps;
          tokensPerSecond = rate(tokens);
          batchSize = steps > 0 ? tokens / steps : null;
        } else {
          const runs = growth(now.runs.get(name), before.runs.get(name));
          batches = runs;
          batchSize = runs > 0 ? growth(now.inferences.get(name), before.inferences.get(name)) / runs : null;
        }
      }
      return {
        name,
        status: entry.status,
        task,
        queueDepth: (queued.get(name) ?? 0) + (seq?.waiting ?? 0),
        running: seq?.running ?? 0,
        batchSize,
        batches,
        requestsPerSecond,
        tokensPerSecond,
        tokensTotal: seq?.tokens ?? 0,
      };
    });

    this.local = local;
    const models = this.sources.cluster ? await this.sources.cluster().catch(() => []) : local;
    const sample: StatsSample = {
      at: new Date(),
      intervalMs: this.intervalMs,
      uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      tokensPerSecond: models.reduce((sum, m) => sum + m.tokensPerSecond, 0),
      requestsPerSecond: models.reduce((sum, m) => sum + m.requestsPerSecond, 0),
      openSubscriptions: (await metrics.subscriptions.get()).values[0]?.value ?? 0,
      models,
    };
    this.latestSample = sample;
    return sample;
  }
}

/** Several processes' figures for the same models, as one: sums, the best status, batch size weighted by batches. */
export function mergeModelStats(all: readonly ModelStats[]): ModelStats[] {
  const byName = new Map<string, ModelStats & { batched: number }>();
  for (const m of all) {
    const seen = byName.get(m.name);
    const batched = (m.batchSize ?? 0) * m.batches;
    if (!seen) {
      byName.set(m.name, { ...m, batched });
      continue;
    }
    if (STATUS_RANK[m.status] > STATUS_RANK[seen.status]) seen.status = m.status;
    seen.task ??= m.task;
    seen.queueDepth += m.queueDepth;
    seen.running += m.running;
    seen.batches += m.batches;
    seen.batched += batched;
    seen.requestsPerSecond += m.requestsPerSecond;
    seen.tokensPerSecond += m.tokensPerSecond;
    seen.tokensTotal += m.tokensTotal;
  }
  return [...byName.values()]
    .map(({ batched, ...m }) => ({ ...m, batchSize: m.batches > 0 ? batched / m.batches : null }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
