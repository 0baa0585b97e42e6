import { createPubSub } from 'graphql-yoga';
import type { ModelEvent } from '../models/registry.js';

/**
 * Every topic the server publishes, with its payload. Subscriptions read
 * these through the context; nothing else talks to the transport directly.
 */
export type Topics = {
  modelEvents: [ModelEvent];
};

export function createEventBus() {
  return createPubSub<Topics>();
}

export type EventBus = ReturnType<typeof createEventBus>;
