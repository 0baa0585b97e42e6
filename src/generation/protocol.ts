import type { ErrorCode } from '../errors.js';
import type { DecoderSpec } from './decoder.js';
import type { SamplingConfig } from './params.js';
import type { TokenEvent } from './types.js';

/**
 * What the main thread and a model's decode worker say to each other. Only
 * plain data crosses: a request reaches the worker already validated
 * (prompt ids and a SamplingConfig); errors travel as a code and a message.
 */

export interface WorkerInit {
  model: string;
  onnxPath: string;
  tokenizerPath: string;
  tokenizerConfigPath: string | null;
  spec: DecoderSpec;
  maxRunning: number;
  maxWaiting: number;
  maxBatchTokens: number;
  intraOpThreads?: number;
}

export type EngineCommand =
  | {
      type: 'submit';
      id: number;
      prompt: number[];
      config: SamplingConfig;
      priority: number;
      /** Wall-clock ms (performance.timeOrigin + now()): comparable across threads. */
      submittedAt: number;
      /** Fail with TIMEOUT if not admitted by then (wall-clock ms). */
      deadlineAt: number | null;
    }
  | { type: 'cancel'; id: number }
  | { type: 'cancelAll' }
  | { type: 'limitTurns'; turns: number | null }
  | { type: 'close' };

/** One sequence's news: a token event (the last has a finishReason) or an error that ends it. */
export type SequenceOutput = { id: number; event: TokenEvent } | { id: number; error: { code: ErrorCode; message: string } };

export interface SchedulerStats {
  running: number;
  waiting: number;
  /** session.run calls (prefills and decode steps) since the model loaded. */
  steps: number;
  /** Tokens generated since the model loaded. */
  tokens: number;
  /** Ids of every sequence the scheduler still holds (running, waiting or in the KV cache). */
  live: number[];
  /** Sequences cancelled since the model loaded (client left, job cancelled, shutdown). */
  cancelled: number;
  /** Most session runs that completed between a cancel reaching the scheduler and its sequence leaving the batch and cache (at most 1: the step already in flight). */
  maxCancelLagSteps: number;
  /** True while the loop waits for turns it was not given (limitTurns, race tests only). */
  held: boolean;
}

export interface StepInfo {
  kind: 'prefill' | 'decode';
  size: number;
  ms: number;
}

export type EngineReport =
  | { type: 'ready' }
  | { type: 'outputs'; outputs: SequenceOutput[]; steps: StepInfo[]; stats: SchedulerStats }
  | { type: 'runError'; message: string }
  | { type: 'closed' }
  | { type: 'fatal'; message: string };

/** Wall-clock milliseconds with sub-millisecond precision, the same clock in every thread. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
