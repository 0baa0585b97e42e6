/**
 * The dynamic-batching decision as a pure function, in the manner of Triton's
 * dynamic batch scheduler: given the batches waiting for a model, say which
 * one to run now, or how long to wait. No timers, no model, no I/O.
 */

export interface WaitingBatch {
  /** Live requests in the batch. */
  size: number;
  /** When its oldest live request arrived (ms, same clock as `now`). */
  oldestAt: number;
  /** Highest priority among its requests. */
  priority: number;
}

export interface BatchPolicy {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  /** Sizes worth running at once, without waiting out the delay. */
  preferredBatchSizes: readonly number[];
}

export type BatchDecision =
  | { kind: 'idle' }
  | { kind: 'wait'; ms: number }
  | { kind: 'run'; index: number };

/** The batch that goes next: highest priority first, then the oldest. */
export function nextBatchIndex(batches: readonly WaitingBatch[]): number {
  let best = -1;
  for (let i = 0; i < batches.length; i++) {
    const b = batches[i]!;
    if (b.size === 0) continue;
    const current = batches[best];
    if (!current || b.priority > current.priority || (b.priority === current.priority && b.oldestAt < current.oldestAt)) best = i;
  }
  return best;
}

export function decideBatch(batches: readonly WaitingBatch[], busy: boolean, now: number, policy: BatchPolicy): BatchDecision {
  if (busy) return { kind: 'idle' };
  const index = nextBatchIndex(batches);
  if (index < 0) return { kind: 'idle' };
  const batch = batches[index]!;
  const isNewest = batches.slice(index + 1).every((b) => b.size === 0);
  const enough = policy.preferredBatchSizes.length > 0 ? Math.min(policy.maxBatchSize, Math.max(...policy.preferredBatchSizes)) : policy.maxBatchSize;
  const waited = now - batch.oldestAt;
  // A batch that is no longer the newest has stopped taking requests: waiting cannot grow it.
  if (batch.size >= enough || !isNewest || waited >= policy.maxQueueDelayMs) return { kind: 'run', index };
  return { kind: 'wait', ms: policy.maxQueueDelayMs - waited };
}
