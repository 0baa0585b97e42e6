import { describe, expect, it } from 'vitest';
import { inferqlError } from '../../src/errors.js';
import { outcomeOf } from '../../src/jobs/worker.js';

const signal = (reason?: string) => {
  const controller = new AbortController();
  if (reason) controller.abort(reason);
  return controller.signal;
};

describe('outcomeOf: what a failed run means for its job', () => {
  const noDeadline = { deadlineMs: null };
  it('a cancel by request is CANCELLED; a shutdown puts the job back in the queue', () => {
    expect(outcomeOf(inferqlError('CANCELLED'), signal('cancel'), noDeadline)).toEqual({ kind: 'cancelled' });
    expect(outcomeOf(inferqlError('CANCELLED'), signal('shutdown'), noDeadline)).toEqual({ kind: 'requeue', backoffMs: 0 });
    // Every sequence ended by a shutdown before the worker was told.
    expect(outcomeOf(inferqlError('CANCELLED'), signal(), noDeadline)).toMatchObject({ kind: 'requeue' });
  });

  it('a full model queue, or its wait running out for a job without a deadline, is a retry, not a failure', () => {
    expect(outcomeOf(inferqlError('QUEUE_FULL', 'full', { retryAfterMs: 120 }), signal(), noDeadline)).toEqual({ kind: 'requeue', backoffMs: 120 });
    expect(outcomeOf(inferqlError('TIMEOUT'), signal(), noDeadline)).toMatchObject({ kind: 'requeue' });
    expect(outcomeOf(inferqlError('TIMEOUT', 'late'), signal(), { deadlineMs: 100 })).toEqual({ kind: 'fail', code: 'TIMEOUT', message: 'late', cause: 'late' });
  });

  it('a catalog error fails the job with its code; anything else is INTERNAL with no detail', () => {
    expect(outcomeOf(inferqlError('MODEL_NOT_READY', 'gone'), signal(), noDeadline)).toMatchObject({ kind: 'fail', code: 'MODEL_NOT_READY', message: 'gone' });
    expect(outcomeOf(new Error('secret path /x'), signal(), noDeadline)).toMatchObject({ kind: 'fail', code: 'INTERNAL', message: 'Unexpected error.' });
  });
});
