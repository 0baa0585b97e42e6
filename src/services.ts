import { ApiKeys } from './auth/api-keys.js';
import { LocalModelCalls, type ModelCalls } from './calls/model-calls.js';
import { Cluster } from './cluster/cluster.js';
import type { Config } from './config.js';
import { createEventBus, type EventBus } from './events/pubsub.js';
import { decoderSpec } from './generation/decoder.js';
import { GenerationService } from './generation/service.js';
import { InferenceService } from './inference/service.js';
import { LocalJobRunner } from './jobs/local-runner.js';
import { JobService } from './jobs/service.js';
import { SqliteJobStore } from './jobs/sqlite-store.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { LocalModelDirectory, type ModelDirectory } from './models/directory.js';
import { ModelRegistry } from './models/registry.js';
import { warmUp } from './models/warm-up.js';
import { StatsService } from './stats.js';

/** Everything resolvers may call, built once per process. Data flows schema → services → batchers → runtime. */
export interface Services {
  config: Config;
  log: Logger;
  auth: ApiKeys;
  events: EventBus;
  /** The models resolvers show: this process's, or in distributed mode every live worker's. */
  models: ModelDirectory;
  /** How resolvers and jobs run models: locally, or on a worker through BullMQ. */
  calls: ModelCalls;
  /** This process's own models (none in an API process). */
  registry: ModelRegistry;
  inference: InferenceService;
  generation: GenerationService;
  jobs: JobService;
  metrics: Metrics;
  /** Per-model queue, batch and throughput samples (the serverStats subscription). */
  stats: StatsService;
  /** Whether the process can serve: models settled, stores reachable. */
  isReady(): boolean;
  /** Distributed mode (REDIS_URL): Redis, BullMQ queues, the shared job store; null in one process. */
  cluster: Cluster | null;
  /** No request queued or running, no sequence generating. */
  isIdle(): boolean;
  /** Takes no new calls or jobs (the first step of a shutdown); running ones go on. */
  pause(): void;
  /** Stops background work (giving it up to `graceMs`), then frees models. */
  close(graceMs?: number): Promise<void>;
}

export async function createServices(config: Config, log: Logger): Promise<Services> {
  const auth = ApiKeys.parse(config.apiKeys, config.apiKeysFile);
  if (!auth.enabled) log.warn('no API keys configured: the server is open to anyone who can reach it (set API_KEYS to require keys)');
  const cluster = config.redisUrl ? await Cluster.connect(config, log) : null;
  const events = createEventBus(cluster?.eventTarget);
  const metrics = createMetrics();
  const registry = new ModelRegistry({
    modelsDir: config.modelsDir,
    validate: (instance) => {
      if (instance.manifest.task !== 'TEXT_GENERATION') return;
      if (!instance.tokenizer) throw new Error('a TEXT_GENERATION model needs a tokenizer.json');
      decoderSpec(instance);
    },
    warmUp: async (instance) => {
      if (!(await warmUp(instance))) log.warn('warm-up run failed; the model loads anyway', { model: instance.name });
    },
    onEvent: (event) => {
      log.info('model event', { model: event.model, kind: event.kind, ...(event.message ? { error: event.message } : {}) });
      events.publish('modelEvents', event);
      cluster?.modelChanged();
      // A decoder's worker loads its session as soon as the model is ready, not on the first request.
      if (event.kind === 'READY' || event.kind === 'SWITCHED') generation.start(event.model);
    },
  });
  const inference = new InferenceService(registry, config, {
    onBatch: (event) => metrics.recordBatch(event),
    onOutcome: (model, code) => (code ? metrics.requestFailure.inc({ model, reason: code }) : metrics.requestSuccess.inc({ model })),
    onError: (error) => log.error('model run failed', { error: String(error) }),
  });
  const generation = new GenerationService(registry, config, {
    onError: (error) => log.error('decode step failed', { error: String(error) }),
    onToken: (model, event, msSinceLast, first) => {
      const l = { model_name: model };
      if (first) metrics.ttft.observe(l, msSinceLast / 1000);
      else metrics.itl.observe(l, msSinceLast / 1000);
      if (event.tokenId !== null) metrics.generationTokens.inc(l);
      if (event.usage) metrics.promptTokens.inc(l, event.usage.promptTokens);
    },
  });
  metrics.sources.queues = () => inference.queues();
  metrics.sources.sequences = () => generation.allStats();
  const stats = new StatsService(
    { registry, inference, generation, metrics, ...(cluster && config.role !== 'worker' ? { cluster: () => cluster.directory.stats() } : {}) },
    { intervalMs: config.statsIntervalMs },
  );
  const local = new LocalModelCalls(inference, generation);
  const localParts = { registry, inference, generation, calls: local, stats: () => stats.localModels() };
  /** What resolvers and jobs call: this process's models, or the workers' through BullMQ. */
  const calls = cluster ? cluster.calls : local;
  const sqlite = cluster ? null : new SqliteJobStore(config.dataDir);
  const store = cluster ? cluster.store : sqlite!;
  const jobs = new JobService({
    store,
    events,
    config,
    log,
    check: (input) => calls.check(input),
    runner: (publish) => (cluster ? cluster.jobRunner(publish, localParts) : new LocalJobRunner({ store: sqlite!, inference, generation, config, log, publish })),
  });
  metrics.sources.jobs = () => store.countByStatus();
  let modelsSettled = false;
  let storeReachable = true;
  const pingStore = setInterval(() => {
    store.ping().then(
      (ok) => (storeReachable = ok),
      () => (storeReachable = false),
    );
  }, 2000);
  pingStore.unref();
  const services: Services = {
    config,
    log,
    auth,
    events,
    models: cluster ? cluster.directory : new LocalModelDirectory(registry),
    calls,
    cluster,
    registry,
    inference,
    generation,
    jobs,
    metrics,
    stats,
    isReady: () => modelsSettled && storeReachable && (cluster?.isUp() ?? true) && registry.allReady(),
    isIdle: () =>
      inference.queues().every((q) => q.queued === 0) && Object.values(generation.allStats()).every((s) => s.running === 0 && s.waiting === 0),
    pause: () => {
      jobs.pause();
      cluster?.pause();
    },
    close: async (graceMs = 0) => {
      clearInterval(pingStore);
      stats.close();
      // Running jobs get the grace period, then go back to the queue for the next start.
      await jobs.close(graceMs);
      generation.cancelAll();
      await registry.close();
      await cluster?.close();
    },
  };
  // An API process loads no models: workers serve them.
  if (config.role !== 'api') await registry.loadAll();
  modelsSettled = true;
  await jobs.start();
  await cluster?.startWorker(localParts);
  return services;
}
