import type { GenerationParams, GenerationResult } from '../generation/types.js';
import type { BatchMetrics } from '../inference/batcher.js';
import type { ClassifyInput, LabelScore } from '../inference/service.js';
import type { Datatype } from '../runtime/dtypes.js';
import type { TensorPayload } from '../runtime/tensor-codec.js';

/**
 * The job model as plain JSON-safe data (times are ms since the epoch), so
 * any JobStore and any pubsub transport carries it unchanged.
 */

export const JOB_KINDS = ['INFER', 'CLASSIFY', 'GENERATE'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export const JOB_STATUSES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const FINISHED: ReadonlySet<JobStatus> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

export function isFinished(status: JobStatus): boolean {
  return FINISHED.has(status);
}

/** What to run: the arguments of the matching synchronous mutation. */
export type JobInput =
  | { kind: 'INFER'; model: string; inputs: TensorPayload[] }
  | { kind: 'CLASSIFY'; model: string; inputs: ClassifyInput[]; topK: number | null }
  | { kind: 'GENERATE'; model: string; prompt: string; params: GenerationParams };

export interface JobError {
  code: string;
  message: string;
}

/** How far a running job has got. */
export interface JobProgress {
  /** Units done: inputs classified, tokens generated, 0 or 1 for infer. */
  completed: number;
  /** Units expected: inputs to classify, 1 for infer, maxTokens (an upper bound) for a generation. */
  total: number | null;
  /** Generation only: the text so far. */
  text: string | null;
}

/** A tensor as stored: its raw little-endian bytes, so the output reads back byte for byte. */
export interface StoredTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  base64: string;
}

/** A finished job's output: JSON that gives exactly the GraphQL output of the synchronous call. */
export type StoredResult =
  | { kind: 'INFER'; outputs: StoredTensor[]; metrics: BatchMetrics }
  | { kind: 'CLASSIFY'; classifications: { labels: LabelScore[]; metrics: BatchMetrics }[] }
  | { kind: 'GENERATE'; generation: GenerationResult };

/** One job as clients see it. The input stays in the store until a worker claims the job (ClaimedJob). */
export interface Job {
  id: string;
  kind: JobKind;
  model: string;
  status: JobStatus;
  priority: number;
  /** Fail with TIMEOUT if not started within this many ms of submission. */
  deadlineMs: number | null;
  /** The API key id that submitted it (null with auth off). */
  owner: string | null;
  createdAt: number;
  /** Start of the current (or last) run. */
  startedAt: number | null;
  finishedAt: number | null;
  /** Runs started (a run cut short by a graceful shutdown is given back). */
  attempts: number;
  error: JobError | null;
  progress: JobProgress | null;
  result: StoredResult | null;
  /** Grows with every change, so a watcher can drop a stale copy. */
  version: number;
  /** Sequence number of the job's latest event. */
  lastSeq: number;
}

/** A job handed to a worker: the record plus what to run. */
export interface ClaimedJob extends Job {
  input: JobInput;
}

export type JobEventType = 'STATUS' | 'OUTPUT';

/** An output chunk: a generated token and the text it adds. */
export interface JobOutputChunk {
  /** Token index within the run (a re-run starts again at 0). */
  index: number;
  tokenId: number | null;
  text: string;
}

/** One numbered event of a job: a status change or an output chunk. */
export interface JobEvent {
  jobId: string;
  /** 1, 2, 3… per job, with no gaps. */
  seq: number;
  at: number;
  type: JobEventType;
  /** STATUS: the new status. */
  status: JobStatus | null;
  /** STATUS RUNNING: which run this is. */
  attempt: number | null;
  /** STATUS FAILED or CANCELLED: why. */
  error: JobError | null;
  /** OUTPUT: the chunk. */
  output: JobOutputChunk | null;
}

/** An event before the store numbers it. */
export type NewJobEvent = Omit<JobEvent, 'jobId' | 'seq' | 'at'>;
