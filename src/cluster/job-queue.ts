import { type Job as BullJob, DelayedError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { GenerationService } from '../generation/service.js';
import type { InferenceService } from '../inference/service.js';
import type { JobRunner } from '../jobs/runner.js';
import type { Change, DispatchedJobStore } from '../jobs/store.js';
import type { Job } from '../jobs/types.js';
import { JobWorker } from '../jobs/worker.js';
import type { Logger } from '../log.js';
import type { ModelRegistry } from '../models/registry.js';
import type { Channels } from './channels.js';
import { ModelWorkers } from './model-workers.js';
import { ClusterQueues } from './queues.js';

interface QueuedJob {
  id: string;
}

/** Finished queue entries are kept a while (the job itself lives in the store). */
const KEEP = { age: 3600 };
/** A job given back (a shutdown, a full model queue) is offered again after this long. */
const REQUEUE_DELAY_MS = 200;

export interface QueuedRunnerOptions {
  store: DispatchedJobStore;
  queues: ClusterQueues;
  channels: Channels;
  publish: (change: Change) => void;
  config: Pick<Config, 'jobConcurrency' | 'jobMaxAttempts' | 'stallMs'>;
  log: Logger;
  /** Present in a process that runs jobs (role worker or all). */
  worker?: {
    connection: Redis;
    registry: ModelRegistry;
    inference: InferenceService;
    generation: GenerationService;
  };
}

/**
 * Durable jobs in distributed mode. Submitting stores the job and adds its id
 * to the model's BullMQ jobs queue; a worker process that serves the model
 * takes it, starts it in the shared store (`begin`: the attempt, and the
 * retry when a previous worker died), and runs it through the same JobWorker
 * as one process does. A worker that dies mid-job stops renewing its BullMQ
 * lock; after STALL_MS BullMQ hands the job to another worker, and `begin`
 * counts the attempt (FAILED with INTERRUPTED past JOB_MAX_ATTEMPTS). The
 * store's conditional writes make the job finish once, whoever finishes it.
 */
export class QueuedJobRunner implements JobRunner {
  private readonly jobWorker: JobWorker | null;
  private readonly bullWorkers: ModelWorkers | null;

  constructor(private readonly options: QueuedRunnerOptions) {
    const { worker, store, config, log, publish } = options;
    this.jobWorker = worker ? new JobWorker({ store, inference: worker.inference, generation: worker.generation, config, log, onChange: publish }) : null;
    this.bullWorkers = worker ? new ModelWorkers(worker.registry, (model) => this.bullWorker(model)) : null;
  }

  async start(): Promise<void> {
    if (!this.jobWorker) return;
    this.jobWorker.start();
    await this.options.channels.onCancel((kind, id) => {
      if (kind === 'job') this.jobWorker!.stop(id, null);
    });
    this.sync();
  }

  /** Takes jobs for every READY model (call on every model event). */
  sync(): void {
    this.bullWorkers?.sync();
  }

  async submitted(job: Job): Promise<void> {
    await this.options.queues.jobs(job.model).add('job', { id: job.id } satisfies QueuedJob, { jobId: job.id, removeOnComplete: KEEP, removeOnFail: KEEP });
  }

  stop(id: string, viewer: string | null): boolean {
    return this.jobWorker?.stop(id, viewer) ?? false;
  }

  cancelled(id: string): void {
    void this.options.channels.cancel('job', id).catch(() => undefined);
  }

  pause(): void {
    this.bullWorkers?.pause();
  }

  async close(graceMs: number): Promise<void> {
    this.pause();
    // Runs cut off here go back to the store's queue and, through `run`, to BullMQ's.
    await this.jobWorker?.close(graceMs);
    await this.bullWorkers?.close();
  }

  private bullWorker(model: string): Worker {
    const { worker, config, log } = this.options;
    const bull = new Worker(ClusterQueues.jobsName(model), (job: BullJob<QueuedJob>, token?: string) => this.run(job, token), {
      connection: worker!.connection,
      prefix: this.options.queues.prefix,
      concurrency: config.jobConcurrency,
      lockDuration: config.stallMs,
      stalledInterval: config.stallMs,
      // Attempts are counted by the store (begin), not by BullMQ.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
    });
    bull.on('error', (error) => log.warn('jobs worker error', { model, error: error.message }));
    return bull;
  }

  /**
   * One job handed over by BullMQ: start it in the store and run it. A run
   * given back (a shutdown, a full model queue) puts the same BullMQ entry
   * back, delayed, on this worker's own connection (which waits out a Redis
   * blip rather than failing), so the job is offered again.
   */
  private async run(bullJob: BullJob<QueuedJob>, token: string | undefined): Promise<void> {
    const { store, publish, config } = this.options;
    const id = bullJob.data.id;
    const outcome = await store.begin(id, Date.now(), config.jobMaxAttempts);
    if (outcome.kind === 'skip') return;
    publish(outcome.change);
    if (outcome.kind !== 'run') return;
    await this.jobWorker!.run(outcome.change.job);
    if ((await store.get(id))?.status === 'QUEUED') {
      await bullJob.moveToDelayed(Date.now() + REQUEUE_DELAY_MS, token);
      throw new DelayedError();
    }
  }
}
