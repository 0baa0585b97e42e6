import type { Worker } from 'bullmq';
import type { ModelRegistry } from '../models/registry.js';

/**
 * One BullMQ Worker per model this process serves: made when the model is
 * READY, closed once it is neither READY nor LOADING (unloaded, failed).
 * Once paused (a shutdown), no worker is made or resumed.
 */
export class ModelWorkers {
  private readonly workers = new Map<string, Worker>();
  private paused = false;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly make: (model: string) => Worker,
  ) {}

  /** Call on every model event. */
  sync(): void {
    if (this.paused) return;
    for (const entry of this.registry.list()) {
      const worker = this.workers.get(entry.name);
      if (entry.status === 'READY' && !worker) this.workers.set(entry.name, this.make(entry.name));
      if (entry.status !== 'READY' && entry.status !== 'LOADING' && worker) {
        this.workers.delete(entry.name);
        void worker.close();
      }
    }
  }

  /** Takes no new work; work in hand goes on (BullMQ keeps its locks renewed). */
  pause(): void {
    this.paused = true;
    for (const worker of this.workers.values()) void worker.pause(true);
  }

  /** Waits for the work in hand, then closes every worker. */
  async close(): Promise<void> {
    this.pause();
    await Promise.allSettled([...this.workers.values()].map((w) => w.close()));
    this.workers.clear();
  }
}
