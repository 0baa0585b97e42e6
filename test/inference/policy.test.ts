import { describe, expect, it } from 'vitest';
import { type BatchPolicy, decideBatch, nextBatchIndex } from '../../src/inference/policy.js';

const policy: BatchPolicy = { maxBatchSize: 4, maxQueueDelayMs: 10, preferredBatchSizes: [] };

describe('decideBatch', () => {
  it('is idle with nothing waiting, or while a batch runs', () => {
    expect(decideBatch([], false, 0, policy)).toEqual({ kind: 'idle' });
    expect(decideBatch([{ size: 4, oldestAt: 0, priority: 0 }], true, 100, policy)).toEqual({ kind: 'idle' });
  });

  it('runs a full batch at once', () => {
    expect(decideBatch([{ size: 4, oldestAt: 0, priority: 0 }], false, 0, policy)).toEqual({ kind: 'run', index: 0 });
  });

  it('waits out the rest of the delay for a partial batch, then runs it', () => {
    expect(decideBatch([{ size: 2, oldestAt: 100, priority: 0 }], false, 103, policy)).toEqual({ kind: 'wait', ms: 7 });
    expect(decideBatch([{ size: 2, oldestAt: 100, priority: 0 }], false, 110, policy)).toEqual({ kind: 'run', index: 0 });
  });

  it('runs a batch that has stopped taking requests without waiting', () => {
    const batches = [
      { size: 3, oldestAt: 100, priority: 0 },
      { size: 1, oldestAt: 101, priority: 0 },
    ];
    expect(decideBatch(batches, false, 101, policy)).toEqual({ kind: 'run', index: 0 });
  });

  it('runs at the largest preferred size without waiting', () => {
    const preferred = { ...policy, maxBatchSize: 16, preferredBatchSizes: [2, 4] };
    expect(decideBatch([{ size: 4, oldestAt: 0, priority: 0 }], false, 0, preferred)).toEqual({ kind: 'run', index: 0 });
    expect(decideBatch([{ size: 3, oldestAt: 0, priority: 0 }], false, 0, preferred)).toEqual({ kind: 'wait', ms: 10 });
  });

  it('with a delay of 0 runs whatever is waiting', () => {
    expect(decideBatch([{ size: 1, oldestAt: 5, priority: 0 }], false, 5, { ...policy, maxQueueDelayMs: 0 })).toEqual({ kind: 'run', index: 0 });
  });
});

describe('nextBatchIndex', () => {
  it('prefers higher priority, then the oldest, and skips empty batches', () => {
    expect(
      nextBatchIndex([
        { size: 4, oldestAt: 1, priority: 0 },
        { size: 1, oldestAt: 2, priority: 5 },
        { size: 0, oldestAt: 0, priority: 9 },
      ]),
    ).toBe(1);
    expect(
      nextBatchIndex([
        { size: 4, oldestAt: 3, priority: 1 },
        { size: 1, oldestAt: 2, priority: 1 },
      ]),
    ).toBe(1);
    expect(nextBatchIndex([{ size: 0, oldestAt: 0, priority: 0 }])).toBe(-1);
  });
});
