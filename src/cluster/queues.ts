import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';

/**
 * The BullMQ queues, one pair per model, so a worker takes only calls for
 * models it serves: `calls-<model>` for synchronous calls and streams (no
 * retry: a caller is waiting), `jobs-<model>` for durable jobs (handed to
 * another worker when one dies).
 */
export class ClusterQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, Promise<QueueEvents>>();

  constructor(
    /** For adding jobs: fails fast while Redis is away. */
    private readonly connection: Redis,
    /** Duplicated by BullMQ for the blocking reads of QueueEvents. */
    private readonly blocking: Redis,
    readonly prefix: string,
  ) {}

  static callsName(model: string): string {
    return `calls-${model}`;
  }

  static jobsName(model: string): string {
    return `jobs-${model}`;
  }

  calls(model: string): Queue {
    return this.queue(ClusterQueues.callsName(model));
  }

  jobs(model: string): Queue {
    return this.queue(ClusterQueues.jobsName(model));
  }

  /** Completion events of a model's calls, listening before it resolves. */
  callEvents(model: string): Promise<QueueEvents> {
    const name = ClusterQueues.callsName(model);
    let events = this.events.get(name);
    if (!events) {
      const queueEvents = new QueueEvents(name, { connection: this.blocking, prefix: this.prefix });
      queueEvents.on('error', () => undefined);
      events = queueEvents.waitUntilReady().then(
        () => queueEvents,
        (error: unknown) => {
          // Not cached: the next call tries again (Redis may be back by then).
          this.events.delete(name);
          void queueEvents.close().catch(() => undefined);
          throw error;
        },
      );
      this.events.set(name, events);
    }
    return events;
  }

  private queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix: this.prefix });
      queue.on('error', () => undefined);
      this.queues.set(name, queue);
    }
    return queue;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    await Promise.allSettled([...this.events.values()].map(async (e) => (await e).close()));
  }
}
