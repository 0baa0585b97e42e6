import type { Change, JobStore } from './store.js';
import type { JobProgress, NewJobEvent } from './types.js';

/**
 * Writes a running job's progress behind it: one write at a time, and what
 * comes in meanwhile (say, tokens of the next decode steps) goes together
 * in the next write. Nothing is dropped or reordered; the run never waits
 * for the store, only `drain()` does, before the job finishes.
 */
export class ProgressWriter {
  private events: NewJobEvent[] = [];
  private progress: JobProgress | null = null;
  private writing: Promise<void> | null = null;

  constructor(
    private readonly store: JobStore,
    private readonly id: string,
    /** The run writing (its startedAt): a stale run's writes are refused, and it hears onGone. */
    private readonly run: number | undefined,
    private readonly onChange: (change: Change) => void,
    /** The job is no longer RUNNING in this run in the store (cancelled elsewhere, or handed to another worker). */
    private readonly onGone: () => void,
  ) {}

  add(progress: JobProgress, event?: NewJobEvent): void {
    this.progress = progress;
    if (event) this.events.push(event);
    this.writing ??= this.write();
  }

  private async write(): Promise<void> {
    while (this.progress) {
      const progress = this.progress;
      const events = this.events;
      this.progress = null;
      this.events = [];
      try {
        const change = await this.store.progress(this.id, progress, events, Date.now(), this.run);
        if (change) this.onChange(change);
        else this.onGone();
      } catch {
        // Progress is best effort; the result and the status are written apart, durably.
      }
    }
    this.writing = null;
  }

  /** Resolves once everything added so far is written. */
  async drain(): Promise<void> {
    while (this.writing) await this.writing;
  }
}
