import type { Job } from './types.js';

/**
 * How stored jobs reach a run, and how a cancel reaches it. One process
 * polls its embedded store (LocalJobRunner); in distributed mode BullMQ hands
 * jobs to whichever worker process is free (see src/cluster/job-queue.ts).
 */
export interface JobRunner {
  /** Starts taking jobs (after recovering what a crash cut off, where the store is its own queue). */
  start(): Promise<void>;
  /** A job was just stored QUEUED. */
  submitted(job: Job): Promise<void>;
  /** Stops a run in this process if `viewer` may see it (null: anyone); whether it did. */
  stop(id: string, viewer: string | null): boolean;
  /** The store has marked a RUNNING job CANCELLED: stop it wherever it runs. */
  cancelled(id: string): void;
  /** Takes no new jobs (the first step of a shutdown); running ones go on. */
  pause(): void;
  /** Gives running jobs up to `graceMs`, then gives the rest back to the queue. */
  close(graceMs: number): Promise<void>;
}
