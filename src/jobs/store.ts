import { inferqlError } from '../errors.js';
import type { ClaimedJob, Job, JobError, JobEvent, JobInput, JobProgress, JobStatus, NewJobEvent, StoredResult } from './types.js';

/** A job to store, already validated. */
export interface NewJob {
  id: string;
  input: JobInput;
  priority: number;
  deadlineMs: number | null;
  owner: string | null;
  createdAt: number;
}

/** A Relay page request: newest first; `first/after` walks to older jobs, `last/before` to newer ones. */
export interface ListQuery {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
  status?: readonly JobStatus[] | null;
  model?: string | null;
  owner?: string | null;
}

export interface JobPage {
  edges: { cursor: string; job: Job }[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  /** Jobs that match the filters, whatever the cursors. */
  totalCount: number;
}

/** A job's outcome, written together with its STATUS event. */
export type Finish =
  | { status: 'SUCCEEDED'; result: StoredResult; progress?: JobProgress | null }
  | { status: 'FAILED'; error: JobError; progress?: JobProgress | null };

/** What a change wrote: the job as it now is and the events it appended, in order. */
export interface Change<J extends Job = Job> {
  job: J;
  events: JobEvent[];
}

export interface CancelOutcome extends Change {
  /** The status before: a RUNNING job must also be stopped where it runs; a finished one is left as it was. */
  previous: JobStatus;
}

export interface RecoveryOutcome {
  /** Interrupted RUNNING jobs put back in the queue. */
  requeued: Change[];
  /** Interrupted RUNNING jobs that had used up their attempts: FAILED with INTERRUPTED. */
  failed: Change[];
}

/**
 * Where jobs and their events live. The interface speaks of jobs, not of a
 * database, so the embedded SQLite store and a shared (Redis/BullMQ) one are
 * interchangeable. Every change is atomic with the events it appends, is
 * conditional on the status it expects (a job finishes at most once), and
 * bumps the job's `version`.
 */
export interface JobStore {
  /** Stores a QUEUED job with its first event (STATUS QUEUED, seq 1). */
  create(job: NewJob): Promise<Change>;
  get(id: string): Promise<Job | null>;
  list(query: ListQuery): Promise<JobPage>;
  /**
   * Records a RUNNING job's progress with its output events; null (nothing
   * written) when it is not RUNNING. `run`, the startedAt of the run writing,
   * fences off a stale run: a run the queue gave up on (and handed to another
   * worker) writes nothing, here and in finish and release.
   */
  progress(id: string, progress: JobProgress, events: NewJobEvent[], now: number, run?: number): Promise<Change | null>;
  /** Finishes a RUNNING job; null (nothing written) when it is not RUNNING any more (e.g. cancelled), or no longer in `run`. */
  finish(id: string, finish: Finish, now: number, run?: number): Promise<Change | null>;
  /** QUEUED or RUNNING → CANCELLED with its event; a finished job comes back as it was, with no events; null when there is no such job. */
  cancel(id: string, now: number): Promise<CancelOutcome | null>;
  /** RUNNING → QUEUED (a graceful shutdown): the run is given back (`attempts - 1`). Null when not RUNNING. */
  release(id: string, now: number, run?: number): Promise<Change | null>;
  /** The job's events numbered above `after`, in order. */
  eventsAfter(id: string, after: number): Promise<JobEvent[]>;
  /** Deletes finished jobs, with their events, that finished before `finishedBefore`; returns how many. */
  prune(finishedBefore: number): Promise<number>;
  countByStatus(): Promise<Record<JobStatus, number>>;
  /** Whether the store answers (for /ready). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The embedded store is also its own queue: the process's JobWorker polls it
 * for work, and recovers what a crash cut off when it starts.
 */
export interface QueueingJobStore extends JobStore {
  /** Takes up to `limit` QUEUED jobs, highest priority first, then oldest: each becomes RUNNING with one more attempt and a STATUS RUNNING event. */
  claim(limit: number, now: number): Promise<Change<ClaimedJob>[]>;
  /** At start: RUNNING jobs (cut off by a crash) go back to the queue, or FAIL with INTERRUPTED once they have had `maxAttempts` runs. */
  recover(maxAttempts: number, now: number): Promise<RecoveryOutcome>;
}

/** What `begin` did with a job a queue (BullMQ) handed to a worker. */
export type BeginOutcome =
  /** QUEUED → RUNNING, or a RUNNING job whose worker died run again: run it. */
  | { kind: 'run'; change: Change<ClaimedJob> }
  /** A RUNNING job whose worker died, with `maxAttempts` runs used up: now FAILED with INTERRUPTED. */
  | { kind: 'failed'; change: Change }
  /** Unknown, finished or cancelled: nothing to run, nothing written. */
  | { kind: 'skip' };

/**
 * A shared store whose queue lives elsewhere (BullMQ in distributed mode): a
 * worker is handed one job id at a time and starts it with `begin`.
 */
export interface DispatchedJobStore extends JobStore {
  /**
   * QUEUED → RUNNING (one more attempt, STATUS RUNNING with the attempt).
   * RUNNING (its worker died and the queue handed it on) → STATUS QUEUED then
   * STATUS RUNNING with the next attempt, so jobEvents shows the retry; or,
   * once it has had `maxAttempts` runs, FAILED with INTERRUPTED.
   */
  begin(id: string, now: number, maxAttempts: number): Promise<BeginOutcome>;
}

/** Why a job cut off by crashes `attempts` times, the most allowed, failed. */
export function interruptedError(attempts: number): JobError {
  return { code: 'INTERRUPTED', message: `The job was interrupted ${attempts} time${attempts === 1 ? '' : 's'}, the most allowed.` };
}

/** The pagination order: newest first by creation time, then by id. */
export interface CursorKey {
  createdAt: number;
  id: string;
}

/** Cursors are opaque to clients: base64url of the order key. */
export function encodeCursor(key: CursorKey): string {
  return Buffer.from(`${key.createdAt}:${key.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): CursorKey {
  const match = /^(\d{1,16}):([0-9A-Za-z_-]{1,64})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw inferqlError('BAD_INPUT', `"${cursor}" is not a jobs cursor.`);
  return { createdAt: Number(match[1]), id: match[2]! };
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** first/last: an integer from 0 to MAX_PAGE_SIZE, or absent. */
export function checkPageSize(value: number | null | undefined, name: string): number | null {
  if (value === null || value === undefined) return null;
  if (!Number.isInteger(value) || value < 0 || value > MAX_PAGE_SIZE) throw inferqlError('BAD_INPUT', `${name} must be an integer from 0 to ${MAX_PAGE_SIZE}.`);
  return value;
}
