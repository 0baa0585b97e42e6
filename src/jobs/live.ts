/**
 * Listens to a live stream at once and buffers everything it delivers until
 * read, without bound (a pubsub Repeater only starts listening on its first
 * `next()`, and limits pushes nobody has read). Watchers open one of these
 * before they read the store, so nothing published in between is missed.
 */
export class LiveBuffer<T> {
  private buffer: T[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private readonly iterator: AsyncIterator<T>;

  constructor(source: AsyncIterable<T>) {
    this.iterator = source[Symbol.asyncIterator]();
    void this.drain();
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        const next = await this.iterator.next();
        if (next.done) break;
        this.buffer.push(next.value);
        this.signal();
      }
    } catch {
      // A failed source ends like a closed one; the watcher reads the store again if it needs to.
    } finally {
      this.ended = true;
      this.signal();
    }
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Everything delivered since the last take; waits for at least one item. Empty once the source has ended. */
  async take(): Promise<T[]> {
    while (this.buffer.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    const items = this.buffer;
    this.buffer = [];
    return items;
  }

  /** Like take, but gives up after `ms` with null (nothing came: time to look at the store itself). */
  async takeWithin(ms: number): Promise<T[] | null> {
    if (this.buffer.length === 0 && !this.ended) {
      let timer: NodeJS.Timeout | undefined;
      const quiet = await Promise.race([
        new Promise<void>((resolve) => (this.wake = resolve)).then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms))),
      ]);
      clearTimeout(timer);
      if (quiet && this.buffer.length === 0 && !this.ended) {
        this.wake = null;
        return null;
      }
    }
    return this.take();
  }

  close(): void {
    this.ended = true;
    this.signal();
    void this.iterator.return?.();
  }
}
