import type { TokenEvent } from './types.js';

/** What a finished or streaming generation tells the metrics: per event, time since the last one. */
export interface TokenObserver {
  (event: TokenEvent, msSinceLast: number, first: boolean): void;
}

/**
 * Passes a token stream through unchanged while timing it. `return()` goes
 * straight to the source, so a client that leaves still cancels its sequence
 * before the next step (no wrapper generator in between).
 */
export function observeTokens(source: AsyncIterableIterator<TokenEvent>, submittedAt: number, observe: TokenObserver): AsyncIterableIterator<TokenEvent> {
  let last = submittedAt;
  let first = true;
  const iterator: AsyncIterableIterator<TokenEvent> = {
    next: async () => {
      const result = await source.next();
      if (!result.done) {
        const now = performance.now();
        observe(result.value, now - last, first);
        first = false;
        last = now;
      }
      return result;
    },
    return: (value?: unknown) => source.return?.(value) ?? Promise.resolve({ value: undefined, done: true }),
    throw: (error?: unknown) => source.throw?.(error) ?? Promise.reject(error),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
