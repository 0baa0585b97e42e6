import type { Config } from './config.js';
import { createEventBus, type EventBus } from './events/pubsub.js';
import { GenerationService } from './generation/service.js';
import { InferenceService } from './inference/service.js';
import type { Logger } from './log.js';
import { ModelRegistry } from './models/registry.js';

/** Everything resolvers may call, built once per process. Data flows schema → services → batchers → runtime. */
export interface Services {
  config: Config;
  log: Logger;
  events: EventBus;
  registry: ModelRegistry;
  inference: InferenceService;
  generation: GenerationService;
  /** Whether the process can serve: models settled, stores reachable. */
  isReady(): boolean;
  close(): Promise<void>;
}

export async function createServices(config: Config, log: Logger): Promise<Services> {
  const events = createEventBus();
  const registry = new ModelRegistry({
    modelsDir: config.modelsDir,
    onEvent: (event) => {
      log.info('model event', { model: event.model, kind: event.kind, ...(event.message ? { error: event.message } : {}) });
      events.publish('modelEvents', event);
    },
  });
  const inference = new InferenceService(registry, config, {
    onError: (error) => log.error('model run failed', { error: String(error) }),
  });
  const generation = new GenerationService(registry, config, {
    onError: (error) => log.error('decode step failed', { error: String(error) }),
  });
  let modelsSettled = false;
  const services: Services = {
    config,
    log,
    events,
    registry,
    inference,
    generation,
    isReady: () => modelsSettled && registry.allReady(),
    close: async () => {
      await registry.close();
    },
  };
  await registry.loadAll();
  modelsSettled = true;
  return services;
}
