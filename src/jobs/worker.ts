import type { Config } from '../config.js';
import { inferqlError, isInferqlError } from '../errors.js';
import type { GenerationService } from '../generation/service.js';
import type { GenerationResult } from '../generation/types.js';
import type { InferenceService } from '../inference/service.js';
import type { Logger } from '../log.js';
import { ProgressWriter } from './progress-writer.js';
import { storeClassify, storeGeneration, storeInfer } from './results.js';
import type { Change, JobStore } from './store.js';
import type { ClaimedJob, JobProgress, StoredResult } from './types.js';

export interface WorkerOptions {
  store: JobStore;
  inference: InferenceService;
  generation: GenerationService;
  config: Pick<Config, 'jobConcurrency'>;
  log: Logger;
  /** Every change the worker writes, to publish. */
  onChange: (change: Change) => void;
  /**
   * Where the worker finds work by itself: the embedded store's queue, polled
   * (`start`). Absent when a queue hands jobs over one by one (`run`).
   */
  claim?: (limit: number, now: number) => Promise<Change<ClaimedJob>[]>;
  /** How often to look for queued jobs without being woken (jobs written by another process). */
  pollMs?: number;
}

/** Why a run was aborted. */
const CANCEL = 'cancel';
const SHUTDOWN = 'shutdown';
/** How long the worker claims nothing after a run was cut off from outside (a shutdown cancelling every sequence). */
const INTERRUPTED_BACKOFF_MS = 1000;

interface Run {
  job: ClaimedJob;
  controller: AbortController;
  done: Promise<void>;
}

/**
 * Runs queued jobs, at most `jobConcurrency` at a time, through the same
 * InferenceService and GenerationService as the synchronous calls, so they
 * share batches and decode steps with live traffic. Progress (each generated
 * token as an output event) is written behind the run, in order (see
 * ProgressWriter); the result is written with the final status in one
 * transaction.
 *
 * On close, running jobs are aborted and given back to the queue (status
 * QUEUED, the run not counted), so the next start runs them again; a job whose
 * result arrives during the stop still succeeds. A crash leaves them RUNNING,
 * and JobStore.recover deals with them at the next start.
 */
export class JobWorker {
  private readonly running = new Map<string, Run>();
  /** Cancels that came before the worker registered the run. */
  private readonly pendingCancels = new Set<string>();
  private claiming: Promise<void> | null = null;
  private again = false;
  private closed = true;
  private paused = false;
  private pausedUntil = 0;
  private timer: NodeJS.Timeout | null = null;
  private poller: NodeJS.Timeout | null = null;
  /** Counters, for tests and metrics. */
  readonly counts = { started: 0, succeeded: 0, failed: 0, cancelled: 0, released: 0 };

  constructor(private readonly options: WorkerOptions) {}

  start(): void {
    this.closed = false;
    if (!this.options.claim) return;
    this.poller = setInterval(() => this.wake(), this.options.pollMs ?? 1000);
    this.poller.unref();
    this.wake();
  }

  get active(): number {
    return this.running.size;
  }

  /** Takes no more jobs (the first step of a shutdown); running ones go on. */
  pause(): void {
    this.paused = true;
  }

  /** Looks for queued jobs now (a job was submitted, or a run ended). */
  wake(): void {
    if (this.closed || this.paused || !this.options.claim) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    const free = this.options.config.jobConcurrency - this.running.size;
    if (free <= 0) return;
    const wait = this.pausedUntil - Date.now();
    if (wait > 0) {
      this.timer ??= setTimeout(() => ((this.timer = null), this.wake()), wait);
      return;
    }
    this.again = false;
    this.claiming = this.claim(free).finally(() => {
      this.claiming = null;
      if (this.again) this.wake();
    });
  }

  private async claim(free: number): Promise<void> {
    try {
      const claimed = await this.options.claim!(free, Date.now());
      for (const change of claimed) {
        this.options.onChange(change);
        if (this.closed) await this.release(change.job);
        else this.begin(change.job);
      }
      // A full claim may have left more behind.
      if (claimed.length === free) this.again = true;
    } catch (error) {
      this.options.log.error('claiming jobs failed', { error: String(error) });
    }
  }

  /**
   * Stops a job this worker runs, if `viewer` may see it (null: anyone); a
   * generation stops before its next decode step. Returns whether it did.
   */
  stop(id: string, viewer: string | null): boolean {
    const run = this.running.get(id);
    if (!run || (viewer !== null && run.job.owner !== viewer)) return false;
    run.controller.abort(CANCEL);
    return true;
  }

  /** A job the store has marked CANCELLED: stop it if it runs here, or as soon as it does. */
  cancel(id: string): void {
    const run = this.running.get(id);
    if (run) run.controller.abort(CANCEL);
    else this.pendingCancels.add(id);
  }

  /**
   * Runs a job a queue handed over (already RUNNING in the store); resolves
   * once its outcome is written: finished, or given back to the queue (QUEUED)
   * when cut off by a shutdown or a full model queue.
   */
  run(job: ClaimedJob): Promise<void> {
    return this.begin(job).done;
  }

  private begin(job: ClaimedJob): Run {
    const controller = new AbortController();
    const run: Run = { job, controller, done: Promise.resolve() };
    // The same job again: the queue gave up on the earlier run (see JobStore.progress), which the store now fences off.
    this.running.get(job.id)?.controller.abort(CANCEL);
    this.running.set(job.id, run);
    this.counts.started++;
    if (this.pendingCancels.delete(job.id)) controller.abort(CANCEL);
    run.done = this.execute(run)
      .catch((error) => this.options.log.error('writing a job outcome failed; it is recovered at the next start', { job: job.id, error: String(error) }))
      .finally(() => {
        if (this.running.get(job.id) === run) this.running.delete(job.id);
        this.wake();
      });
    return run;
  }

  private async execute({ job, controller }: Run): Promise<void> {
    const { store, onChange, log } = this.options;
    const signal = controller.signal;
    let progress: JobProgress | null = null;
    let outcome: Outcome;
    let result: StoredResult | null = null;
    try {
      result = await this.perform(job, controller, (p) => (progress = p));
      outcome = { kind: 'succeed' };
    } catch (error) {
      outcome = outcomeOf(error, signal, job);
    }
    switch (outcome.kind) {
      case 'succeed': {
        const change = await store.finish(job.id, { status: 'SUCCEEDED', result: result!, progress }, Date.now(), job.startedAt ?? undefined);
        if (change) {
          this.counts.succeeded++;
          onChange(change);
        }
        return;
      }
      case 'cancelled':
        this.counts.cancelled++;
        return;
      case 'requeue':
        if (outcome.backoffMs > 0) this.pausedUntil = Math.max(this.pausedUntil, Date.now() + outcome.backoffMs);
        await this.release(job);
        return;
      case 'fail': {
        if (outcome.code === 'INTERNAL') log.error('job failed', { job: job.id, error: outcome.cause });
        const change = await store.finish(job.id, { status: 'FAILED', error: { code: outcome.code, message: outcome.message }, progress }, Date.now(), job.startedAt ?? undefined);
        if (change) {
          this.counts.failed++;
          onChange(change);
        }
      }
    }
  }

  private async release(job: ClaimedJob): Promise<void> {
    const change = await this.options.store.release(job.id, Date.now(), job.startedAt ?? undefined);
    if (change) {
      this.counts.released++;
      this.options.onChange(change);
    }
  }

  /** Runs one job through the synchronous path's services; resolves with the result to store. */
  private async perform(job: ClaimedJob, controller: AbortController, setProgress: (p: JobProgress) => void): Promise<StoredResult> {
    const { input } = job;
    let deadlineMs: number | undefined;
    if (job.deadlineMs !== null) {
      deadlineMs = job.createdAt + job.deadlineMs - Date.now();
      if (deadlineMs <= 0) throw inferqlError('TIMEOUT', `The job was not started within its deadline of ${job.deadlineMs} ms.`);
    }
    const options = { priority: job.priority, deadlineMs, signal: controller.signal };
    if (input.kind === 'INFER') {
      const result = storeInfer(await this.options.inference.infer(input.model, input.inputs, options));
      setProgress({ completed: 1, total: 1, text: null });
      return result;
    }
    if (input.kind === 'CLASSIFY') {
      const result = storeClassify(await this.options.inference.classify(input.model, input.inputs, input.topK, options));
      setProgress({ completed: input.inputs.length, total: input.inputs.length, text: null });
      return result;
    }
    return storeGeneration(await this.generate(job, input, options, setProgress, () => controller.abort(CANCEL)));
  }

  /** Streams a generation as the `generate` mutation does, writing each token as an output event. */
  private async generate(
    job: ClaimedJob,
    input: Extract<ClaimedJob['input'], { kind: 'GENERATE' }>,
    options: { priority: number; deadlineMs: number | undefined; signal: AbortSignal },
    setProgress: (p: JobProgress) => void,
    /** Stops this run: the store says it is no longer the job's run (cancelled, or handed elsewhere). */
    stop: () => void,
  ): Promise<GenerationResult> {
    const writer = new ProgressWriter(this.options.store, job.id, job.startedAt ?? undefined, this.options.onChange, stop);
    const events = await this.options.generation.open(input.model, input.prompt, input.params, options);
    let text = '';
    const tokenIds: number[] = [];
    try {
      for await (const event of events) {
        text += event.text;
        if (event.tokenId !== null) tokenIds.push(event.tokenId);
        if (event.finishReason === 'CANCELLED') break;
        if (event.tokenId !== null) {
          const progress: JobProgress = { completed: tokenIds.length, total: null, text };
          setProgress(progress);
          writer.add(progress, { type: 'OUTPUT', status: null, attempt: null, error: null, output: { index: event.index, tokenId: event.tokenId, text: event.text } });
        }
        if (event.finishReason) return { text, tokenIds, finishReason: event.finishReason, usage: event.usage!, metrics: event.metrics! };
      }
    } finally {
      // Every output event is stored before the job's final status.
      await writer.drain();
    }
    throw inferqlError('CANCELLED');
  }

  /**
   * Stops claiming; gives running jobs up to `graceMs` to finish, then aborts
   * the rest and gives them back to the queue (a result that arrives anyway
   * is still stored).
   */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    if (this.timer) clearTimeout(this.timer);
    await this.claiming;
    if (graceMs > 0 && this.running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([grace, Promise.allSettled([...this.running.values()].map((r) => r.done))]);
      clearTimeout(timer);
    }
    const runs = [...this.running.values()];
    for (const run of runs) run.controller.abort(SHUTDOWN);
    await Promise.allSettled(runs.map((r) => r.done));
  }
}

type Outcome =
  | { kind: 'succeed' }
  | { kind: 'cancelled' }
  | { kind: 'requeue'; backoffMs: number }
  | { kind: 'fail'; code: string; message: string; cause: string };

/**
 * What a failed run means for its job: cancelled by request (the store
 * already says CANCELLED); cut off by a shutdown, or held up by a full or
 * slow model queue with no deadline of its own (back to the queue, the run
 * given back, claims paused a while); or a failure, with its error code.
 */
export function outcomeOf(error: unknown, signal: AbortSignal, job: Pick<ClaimedJob, 'deadlineMs'>): Outcome {
  if (signal.reason === CANCEL) return { kind: 'cancelled' };
  if (signal.reason === SHUTDOWN) return { kind: 'requeue', backoffMs: 0 };
  if (!isInferqlError(error)) return { kind: 'fail', code: 'INTERNAL', message: 'Unexpected error.', cause: String(error) };
  // CANCELLED that is not ours: a shutdown ended every sequence before stopping the worker.
  if (error.code === 'CANCELLED') return { kind: 'requeue', backoffMs: INTERRUPTED_BACKOFF_MS };
  if (error.code === 'QUEUE_FULL') return { kind: 'requeue', backoffMs: Math.max(10, Number(error.extensions.retryAfterMs ?? 50)) };
  if (error.code === 'TIMEOUT' && job.deadlineMs === null) return { kind: 'requeue', backoffMs: 50 };
  return { kind: 'fail', code: error.code, message: error.message, cause: error.message };
}
