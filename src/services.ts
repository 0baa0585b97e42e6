import { ApiKeys } from './auth/api-keys.js';
import type { Config } from './config.js';
import { createEventBus, type EventBus } from './events/pubsub.js';
import { GenerationService } from './generation/service.js';
import { InferenceService } from './inference/service.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { ModelRegistry } from './models/registry.js';

/** Everything resolvers may call, built once per process. Data flows schema → services → batchers → runtime. */
export interface Services {
  config: Config;
  log: Logger;
  auth: ApiKeys;
  events: EventBus;
  registry: ModelRegistry;
  inference: InferenceService;
  generation: GenerationService;
  metrics: Metrics;
  /** Whether the process can serve: models settled, stores reachable. */
  isReady(): boolean;
  close(): Promise<void>;
}

export async function createServices(config: Config, log: Logger): Promise<Services> {
  const auth = ApiKeys.parse(config.apiKeys, config.apiKeysFile);
  if (!auth.enabled) log.warn('no API keys configured: the server is open to anyone who can reach it (set API_KEYS to require keys)');
  const events = createEventBus();
  const metrics = createMetrics();
  const registry = new ModelRegistry({
    modelsDir: config.modelsDir,
    onEvent: (event) => {
      log.info('model event', { model: event.model, kind: event.kind, ...(event.message ? { error: event.message } : {}) });
      events.publish('modelEvents', event);
    },
  });
  const inference = new InferenceService(registry, config, {
    onBatch: (event) => metrics.recordBatch(event),
    onOutcome: (model, code) => (code ? metrics.requestFailure.inc({ model, reason: code }) : metrics.requestSuccess.inc({ model })),
    onError: (error) => log.error('model run failed', { error: String(error) }),
  });
  const generation = new GenerationService(registry, config, {
    onError: (error) => log.error('decode step failed', { error: String(error) }),
  });
  metrics.sources.queues = () => inference.queues();
  metrics.sources.sequences = () => generation.allStats();
  let modelsSettled = false;
  const services: Services = {
    config,
    log,
    auth,
    events,
    registry,
    inference,
    generation,
    metrics,
    isReady: () => modelsSettled && registry.allReady(),
    close: async () => {
      await registry.close();
    },
  };
  await registry.loadAll();
  modelsSettled = true;
  return services;
}
