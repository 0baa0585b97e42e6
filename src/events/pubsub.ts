import { createPubSub } from 'graphql-yoga';
import type { Job, JobEvent } from '../jobs/types.js';
import type { ModelEvent } from '../models/registry.js';

/**
 * Every topic the server publishes, with its payload. Subscriptions read
 * these through the context; nothing else talks to the transport directly.
 */
export type Topics = {
  modelEvents: [ModelEvent];
  jobUpdated: [id: string, job: Job];
  /** The events one change of a job appended, in order (one message per change keeps the subscriber's queue short). */
  jobEvents: [id: string, events: readonly JobEvent[]];
};

type EventTarget = NonNullable<Parameters<typeof createPubSub>[0]>['eventTarget'];

/** In process by default; over Redis pub/sub in distributed mode (see src/cluster/cluster.ts). */
export function createEventBus(eventTarget?: EventTarget) {
  return createPubSub<Topics>(eventTarget ? { eventTarget } : undefined);
}

export type EventBus = ReturnType<typeof createEventBus>;
