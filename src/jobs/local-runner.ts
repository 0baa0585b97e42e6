import type { Config } from '../config.js';
import type { GenerationService } from '../generation/service.js';
import type { InferenceService } from '../inference/service.js';
import type { Logger } from '../log.js';
import type { JobRunner } from './runner.js';
import type { Change, QueueingJobStore } from './store.js';
import { JobWorker } from './worker.js';

export interface LocalRunnerOptions {
  store: QueueingJobStore;
  inference: InferenceService;
  generation: GenerationService;
  config: Pick<Config, 'jobConcurrency' | 'jobMaxAttempts'>;
  log: Logger;
  publish: (change: Change) => void;
}

/** One process: its JobWorker polls the embedded store, which is also the queue. */
export class LocalJobRunner implements JobRunner {
  private readonly worker: JobWorker;

  constructor(private readonly options: LocalRunnerOptions) {
    const { store } = options;
    this.worker = new JobWorker({ ...options, onChange: options.publish, claim: (limit, now) => store.claim(limit, now) });
  }

  async start(): Promise<void> {
    const { store, config, log, publish } = this.options;
    const { requeued, failed } = await store.recover(config.jobMaxAttempts, Date.now());
    for (const change of [...requeued, ...failed]) publish(change);
    if (requeued.length > 0 || failed.length > 0) log.info('jobs recovered', { requeued: requeued.length, failed: failed.length });
    this.worker.start();
  }

  async submitted(): Promise<void> {
    this.worker.wake();
  }

  stop(id: string, viewer: string | null): boolean {
    return this.worker.stop(id, viewer);
  }

  cancelled(id: string): void {
    this.worker.cancel(id);
  }

  pause(): void {
    this.worker.pause();
  }

  close(graceMs: number): Promise<void> {
    return this.worker.close(graceMs);
  }
}
