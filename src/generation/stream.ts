import type { TokenEvent } from './types.js';

/**
 * One sequence's events on the main thread, in the order the client reads
 * them. The decode worker does not wait for readers, so a slow reader (a
 * job writing each token to its store, a congested socket) may fall behind;
 * the stream buffers what it has not read yet.
 *
 * Cancelling (the request's signal aborts) means the reader gets no more
 * tokens: what is buffered is dropped, the worker is told to drop the
 * sequence, and the stream closes with one CANCELLED event whose usage
 * counts the tokens the reader actually got. Returning from the iterator
 * (the subscription completed) cancels the same way, without the closing
 * event.
 */
export class TokenStream implements AsyncIterableIterator<TokenEvent> {
  private readonly buffer: TokenEvent[] = [];
  /** A next() waiting for the next event. */
  private reader: { resolve: (result: IteratorResult<TokenEvent>) => void; reject: (error: unknown) => void } | null = null;
  private failure: unknown = null;
  /** The last event (or error) is in: nothing more will be buffered. */
  private ended = false;
  /** The reader returned: nothing more is kept or delivered. */
  private closed = false;
  /** Cancelled before the last event came: it will be replaced by a CANCELLED one. */
  private cancelling = false;
  /** Tokens the reader has taken. */
  private taken = 0;
  /** The worker's last event, once it came (kept for its usage and metrics). */
  private last: TokenEvent | null = null;

  constructor(private readonly cancelSequence: () => void) {}

  /** An event from the worker. */
  push(event: TokenEvent): void {
    if (this.closed || this.ended) return;
    if (event.finishReason) this.last = event;
    if (this.cancelling) {
      if (event.finishReason) this.end(this.cancelledAfter(event));
      return;
    }
    this.offer(event);
    if (event.finishReason) this.ended = true;
  }

  /** The sequence ended with an error instead of a last event. */
  fail(error: unknown): void {
    if (this.closed || this.ended) return;
    this.failure = error;
    this.ended = true;
    this.buffer.length = 0;
    const reader = this.reader;
    this.reader = null;
    reader?.reject(error);
  }

  /** The client went away: no more tokens for it; the stream ends with CANCELLED. */
  cancel(): void {
    if (this.closed || this.cancelling) return;
    if (this.ended) {
      // Everything is in. If the reader took it all there is nothing to cancel.
      if (this.failure || this.buffer.length === 0) return;
      this.buffer.length = 0;
      this.end(this.cancelledAfter(this.last!));
      return;
    }
    this.buffer.length = 0;
    this.cancelling = true;
    this.cancelSequence();
  }

  next(): Promise<IteratorResult<TokenEvent>> {
    if (this.buffer.length > 0) return Promise.resolve({ value: this.take(this.buffer.shift()!), done: false });
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed || this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.reader = { resolve, reject }));
  }

  return(): Promise<IteratorResult<TokenEvent>> {
    if (!this.ended && !this.cancelling) this.cancelSequence();
    this.closed = true;
    this.buffer.length = 0;
    const reader = this.reader;
    this.reader = null;
    reader?.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<TokenEvent> {
    return this;
  }

  private offer(event: TokenEvent): void {
    if (this.reader) {
      const reader = this.reader;
      this.reader = null;
      reader.resolve({ value: this.take(event), done: false });
    } else this.buffer.push(event);
  }

  private take(event: TokenEvent): TokenEvent {
    if (event.tokenId !== null) this.taken++;
    return event;
  }

  private end(event: TokenEvent): void {
    this.cancelling = false;
    this.offer(event);
    this.ended = true;
  }

  /** The closing event of a cancelled stream: usage counts what the reader got; metrics are the worker's. */
  private cancelledAfter(last: TokenEvent): TokenEvent {
    const promptTokens = last.usage?.promptTokens ?? 0;
    return {
      index: this.taken,
      tokenId: null,
      text: '',
      finishReason: 'CANCELLED',
      usage: { promptTokens, completionTokens: this.taken, totalTokens: promptTokens + this.taken },
      metrics: last.metrics,
    };
  }
}
