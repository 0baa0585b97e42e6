import { randomSeed } from '../generation/rng.js';
import type { Config } from '../config.js';
import { inferqlError } from '../errors.js';
import type { EventBus } from '../events/pubsub.js';
import type { Logger } from '../log.js';
import { newJobId } from './ids.js';
import { LiveBuffer } from './live.js';
import type { JobRunner } from './runner.js';
import type { Change, JobPage, JobStore, ListQuery } from './store.js';
import { isFinished, type Job, type JobEvent, type JobInput } from './types.js';

export interface SubmitOptions {
  priority?: number | null;
  deadlineMs?: number | null;
  /** The submitting API key's id. */
  owner?: string | null;
}

export interface JobServiceOptions {
  store: JobStore;
  /** Builds what runs the jobs, given how to announce each change it writes. */
  runner: (publish: (change: Change) => void) => JobRunner;
  /** The synchronous call's own checks, nothing run: throws as the mutation would. */
  check: (input: JobInput) => Promise<void>;
  events: EventBus;
  config: Pick<Config, 'jobRetentionDays'>;
  log: Logger;
}

const DAY_MS = 86_400_000;
const PRUNE_EVERY_MS = 3_600_000;
/** A watcher that has heard nothing for this long reads the store itself. */
const RECHECK_MS = 5000;

/**
 * Durable jobs: submit (checked exactly as the synchronous call checks, then
 * stored), run (by the worker, through the same batchers and scheduler as
 * live traffic), follow (status, progress, numbered events), cancel, recover
 * after a crash, and prune once past retention.
 *
 * `viewer`, where a method takes one, is the API key id a caller is limited
 * to (null: sees every job); other keys' jobs look as if they did not exist.
 */
export class JobService {
  readonly store: JobStore;
  private readonly runner: JobRunner;
  private pruneTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: JobServiceOptions) {
    this.store = options.store;
    this.runner = options.runner((change) => this.publish(change));
  }

  /** Prunes, then starts the runner (which recovers jobs a crash cut off). Call once the models are loaded. */
  async start(): Promise<void> {
    await this.prune();
    this.pruneTimer = setInterval(() => void this.prune().catch((error) => this.options.log.error('pruning jobs failed', { error: String(error) })), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    await this.runner.start();
  }

  /** Takes no more jobs from the queue (call first when shutting down); running ones go on until close(). */
  pause(): void {
    this.runner.pause();
  }

  /** Stops the runner (jobs still running after `graceMs` go back to the queue) and closes the store. */
  async close(graceMs = 0): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.runner.close(graceMs);
    await this.store.close();
  }

  /** Deletes finished jobs older than the retention; returns how many. */
  async prune(now = Date.now()): Promise<number> {
    const removed = await this.store.prune(now - this.options.config.jobRetentionDays * DAY_MS);
    if (removed > 0) this.options.log.info('pruned finished jobs', { removed });
    return removed;
  }

  async submit(input: JobInput, options: SubmitOptions = {}): Promise<Job> {
    await this.options.check(input);
    const deadlineMs = options.deadlineMs ?? null;
    if (deadlineMs !== null && (!Number.isInteger(deadlineMs) || deadlineMs <= 0)) throw inferqlError('BAD_INPUT', 'deadlineMs must be a positive number.');
    const now = Date.now();
    const change = await this.store.create({ id: newJobId(now), input: this.pinned(input), priority: options.priority ?? 0, deadlineMs, owner: options.owner ?? null, createdAt: now });
    this.publish(change);
    try {
      await this.runner.submitted(change.job);
    } catch (error) {
      // Stored but not queued: withdraw it rather than leave a job nothing will run.
      const withdrawn = await this.store.cancel(change.job.id, Date.now()).catch(() => null);
      if (withdrawn) this.publish(withdrawn);
      this.options.log.error('queueing a job failed; it was withdrawn', { job: change.job.id, error: String(error) });
      throw inferqlError('UNAVAILABLE', 'The job queue is unreachable; the job was not queued. Retry.');
    }
    return change.job;
  }

  /** A sampled generation gets its seed now, so a run repeated after a crash gives the same text. */
  private pinned(input: JobInput): JobInput {
    if (input.kind !== 'GENERATE' || (input.params.seed !== null && input.params.seed !== undefined)) return input;
    return { ...input, params: { ...input.params, seed: randomSeed() } };
  }

  async get(id: string, viewer: string | null = null): Promise<Job | null> {
    const job = await this.store.get(id);
    return job && (viewer === null || job.owner === viewer) ? job : null;
  }

  /** The job, or JOB_NOT_FOUND. */
  async mustGet(id: string, viewer: string | null = null): Promise<Job> {
    const job = await this.get(id, viewer);
    if (!job) throw inferqlError('JOB_NOT_FOUND', `No job with id "${id}".`, { id });
    return job;
  }

  list(query: ListQuery, viewer: string | null = null): Promise<JobPage> {
    return this.store.list(viewer === null ? query : { ...query, owner: viewer });
  }

  /** A queued job never runs; a running one stops (a generation before its next decode step); a finished one is left as it is (JOB_FINISHED). */
  async cancel(id: string, viewer: string | null = null): Promise<Job> {
    // A run here stops at once, before the store is even asked: if the job
    // finishes first anyway, the store keeps that and the stop did nothing.
    const stopped = this.runner.stop(id, viewer);
    if (!stopped) await this.mustGet(id, viewer);
    const outcome = await this.store.cancel(id, Date.now());
    if (!outcome) throw inferqlError('JOB_NOT_FOUND', `No job with id "${id}".`, { id });
    if (isFinished(outcome.previous)) {
      throw inferqlError('JOB_FINISHED', `Job "${id}" has already finished (${outcome.previous}).`, { id, status: outcome.previous });
    }
    this.publish(outcome);
    if (outcome.previous === 'RUNNING' && !stopped) this.runner.cancelled(id);
    return outcome.job;
  }

  async events(id: string, after: number, viewer: string | null = null): Promise<JobEvent[]> {
    await this.mustGet(id, viewer);
    return this.store.eventsAfter(id, after);
  }

  /**
   * The job now, then again at every change (status, progress), ending with
   * its finished state. Listens before it reads, so no change is missed.
   */
  async *watch(id: string, viewer: string | null, signal?: AbortSignal): AsyncGenerator<Job> {
    const live = this.listen<Job>('jobUpdated', id, signal);
    try {
      const job = await this.mustGet(id, viewer);
      let version = job.version;
      yield job;
      if (isFinished(job.status)) return;
      for (;;) {
        let batch = await live.takeWithin(RECHECK_MS);
        if (batch === null) {
          // Quiet for a while: an update may have been lost on the way (another process, a Redis reconnect).
          const now = await this.store.get(id);
          if (!now) return;
          batch = [now];
        }
        if (batch.length === 0) return;
        for (const next of batch) {
          if (next.version <= version) continue;
          version = next.version;
          yield next;
          if (isFinished(next.status)) return;
        }
      }
    } finally {
      live.close();
    }
  }

  /**
   * The job's events numbered above `after`: first those stored, then live
   * ones as they happen, each exactly once and in order, ending after the
   * finishing STATUS event. It listens before it reads the store, drops what
   * it has already sent, and fills any gap from the store.
   */
  async *watchEvents(id: string, after: number, viewer: string | null, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const live = this.listen<readonly JobEvent[]>('jobEvents', id, signal);
    try {
      await this.mustGet(id, viewer);
      let last = Math.max(0, after);
      let pending = await this.store.eventsAfter(id, last);
      for (;;) {
        for (const event of pending) {
          if (event.seq <= last) continue;
          if (event.seq > last + 1) {
            // Missed on the live path (another process, a dropped message): read the gap from the store.
            const gap = await this.store.eventsAfter(id, last);
            for (const e of gap) {
              if (e.seq > event.seq) break;
              last = e.seq;
              yield e;
              if (e.type === 'STATUS' && isFinished(e.status!)) return;
            }
            continue;
          }
          last = event.seq;
          yield event;
          if (event.type === 'STATUS' && isFinished(event.status!)) return;
        }
        const batches = await live.takeWithin(RECHECK_MS);
        // Quiet for a while: read the store, in case events were lost on the way (another process, a Redis reconnect).
        if (batches === null) pending = await this.store.eventsAfter(id, last);
        else if (batches.length === 0) return;
        else pending = batches.flat();
      }
    } finally {
      live.close();
    }
  }

  private listen<T>(topic: 'jobUpdated' | 'jobEvents', id: string, signal?: AbortSignal): LiveBuffer<T> {
    const live = new LiveBuffer<T>(this.options.events.subscribe(topic, id) as AsyncIterable<T>);
    if (signal) {
      if (signal.aborted) live.close();
      else signal.addEventListener('abort', () => live.close(), { once: true });
    }
    return live;
  }

  /** Sends a change to watchers: its events, then the job as it now is. */
  publish(change: Change): void {
    if (change.events.length > 0) this.options.events.publish('jobEvents', change.job.id, change.events);
    this.options.events.publish('jobUpdated', change.job.id, change.job);
  }
}
