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

export function createEventBus() {
  return createPubSub<Topics>();
}

export type EventBus = ReturnType<typeof createEventBus>;
