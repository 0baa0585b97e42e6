import type ort from 'onnxruntime-node';
import type { Feeds, Fetches } from '../runtime/session.js';
import { type CacheSlice, type DecoderSpec, decodeFeeds, gatherCache, prefillFeeds } from './decoder.js';
import { type SchedulerStats, type StepInfo, wallMs } from './protocol.js';
import type { Sequence } from './sequence.js';

export type { SchedulerStats } from './protocol.js';

export interface SchedulerOptions {
  model: string;
  maxRunning: number;
  maxWaiting: number;
  /** Prompt tokens one prefill may take (at least one sequence is always admitted). */
  maxBatchTokens: number;
  onStep?: (step: StepInfo) => void;
  onError?: (error: unknown) => void;
  /** The loop stopped: nothing running or waiting, the batch cache freed. */
  onIdle?: () => void;
  /** Called when the loop stops to wait for turns (limitTurns), so the stats that say so go out. */
  onHeld?: () => void;
}

/**
 * Continuous batching for one model (the TGI / vLLM loop), run inside the
 * model's decode worker. The scheduler alone owns its queue and batch;
 * others talk to it through `submit` and `cancel`. Each turn: drop
 * cancelled and finished sequences → admit waiting ones while the slots and
 * the prompt-token budget allow (one left-padded prefill run) → one decode
 * step for every running sequence (one session.run) → hand each its token.
 * The batch's KV cache is passed on as is while its rows stay the same and
 * regathered (rows copied right-aligned into a new cache) when they change,
 * which is how a cancelled sequence's cache is dropped.
 */
export class DecodeScheduler {
  private waiting: Sequence[] = [];
  private running: Sequence[] = [];
  /** The batch cache and the rows it holds, in order. */
  private cache: { tensors: ort.Tensor[]; width: number; rows: Sequence[] } | null = null;
  private looping = false;
  private closed = false;
  private idle: (() => void)[] = [];
  steps = 0;
  tokens = 0;
  private cancelled = 0;
  private maxCancelLagSteps = 0;
  private turnBudget = Number.POSITIVE_INFINITY;
  private reopen: (() => void) | null = null;

  constructor(
    private readonly session: { run(feeds: Feeds): Promise<Fetches> },
    private readonly spec: DecoderSpec,
    private readonly options: SchedulerOptions,
  ) {}

  /** Queues a sequence by priority; one that cannot be taken ends at once with an error output. */
  submit(seq: Sequence, deadlineAt: number | null = null): void {
    if (this.closed) return seq.fail('MODEL_NOT_READY', `Model "${this.options.model}" is unloading.`);
    // The main thread bounds the queue; this is the backstop.
    if (this.waiting.length >= this.options.maxWaiting) {
      return seq.fail('QUEUE_FULL', `Model "${this.options.model}" has ${this.waiting.length} generations waiting; retry later.`);
    }
    let at = this.waiting.findIndex((w) => w.priority < seq.priority);
    if (at < 0) at = this.waiting.length;
    this.waiting.splice(at, 0, seq);
    if (deadlineAt !== null) {
      const timer = setTimeout(() => {
        if (seq.status !== 'WAITING') return;
        this.waiting = this.waiting.filter((w) => w !== seq);
        seq.fail('TIMEOUT', 'The deadline passed before the generation started.');
      }, Math.max(0, deadlineAt - wallMs()));
      timer.unref();
    }
    this.wake();
  }

  /** The client left: a waiting sequence goes at once, a running one before the next step. */
  cancel(seq: Sequence): void {
    if (seq.status === 'FINISHED') return;
    if (seq.status === 'WAITING') this.waiting = this.waiting.filter((w) => w !== seq);
    this.cancelled++;
    seq.cancelledAtStep = this.steps;
    seq.cancel();
    this.wake();
  }

  stats(): SchedulerStats {
    const live = new Set([...this.waiting, ...this.running, ...(this.cache?.rows ?? [])].map((s) => s.id));
    return {
      running: this.running.reduce((n, s) => n + (s.status === 'RUNNING' ? 1 : 0), 0),
      waiting: this.waiting.length,
      steps: this.steps,
      tokens: this.tokens,
      live: [...live],
      cancelled: this.cancelled,
      maxCancelLagSteps: this.maxCancelLagSteps,
      held: this.reopen !== null,
    };
  }

  /** Stops admitting; resolves when every running and waiting sequence has finished. */
  async close(): Promise<void> {
    this.closed = true;
    this.limitTurns(null);
    if (!this.looping && this.running.length === 0 && this.waiting.length === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /**
   * Lets the loop take at most `turns` more turns (admit + prefill + one
   * decode step), then wait; null lifts the limit. For race tests: with the
   * loop held, "the client left while its sequence was still running" is
   * certain rather than likely. Commands (submit, cancel) are still taken
   * while it waits.
   */
  limitTurns(turns: number | null): void {
    this.turnBudget = turns ?? Number.POSITIVE_INFINITY;
    if (this.turnBudget > 0 && this.reopen) {
      const reopen = this.reopen;
      this.reopen = null;
      reopen();
    }
  }

  /** Ends every sequence now with CANCELLED (shutdown past its grace period). */
  cancelAll(): void {
    for (const seq of [...this.waiting, ...this.running]) this.cancel(seq);
  }

  private wake(): void {
    if (this.looping) return;
    this.looping = true;
    setImmediate(() => void this.loop());
  }

  /**
   * No extra yield between steps: onnxruntime-node runs each session.run in
   * a setImmediate, so every step passes through one turn of the worker's
   * event loop, where new requests and cancellations arrive; the next turn
   * sees them. The main thread delivers a step's tokens while the worker
   * already computes the next one.
   */
  private async loop(): Promise<void> {
    try {
      while (this.running.length > 0 || this.waiting.length > 0) {
        if (this.turnBudget <= 0) {
          const reopened = new Promise<void>((resolve) => (this.reopen = resolve));
          this.options.onHeld?.();
          await reopened;
        }
        this.turnBudget--;
        this.running = this.running.filter((s) => s.status === 'RUNNING');
        const admitted = this.admit();
        if (admitted.length > 0) await this.prefill(admitted);
        this.running = this.running.filter((s) => s.status === 'RUNNING');
        if (this.running.length > 0) await this.decode();
      }
    } finally {
      for (const seq of this.cache?.rows ?? []) this.left(seq);
      this.running = [];
      this.cache = null;
      this.looping = false;
      this.idle.splice(0).forEach((r) => r());
      this.options.onIdle?.();
    }
  }

  private admit(): Sequence[] {
    const admitted: Sequence[] = [];
    let tokens = 0;
    while (this.waiting.length > 0 && this.running.length + admitted.length < this.options.maxRunning) {
      const next = this.waiting[0]!;
      if (admitted.length > 0 && tokens + next.prompt.length > this.options.maxBatchTokens) break;
      this.waiting.shift();
      tokens += next.prompt.length;
      next.status = 'RUNNING';
      next.admittedAt = wallMs();
      admitted.push(next);
    }
    return admitted;
  }

  private async prefill(group: Sequence[]): Promise<void> {
    const t0 = performance.now();
    let out: Record<string, ort.Tensor>;
    try {
      out = await this.session.run(prefillFeeds(this.spec, group.map((s) => s.prompt)));
    } catch (error) {
      this.options.onError?.(error);
      for (const s of group) s.fail('INTERNAL', 'The model failed to run.');
      return;
    }
    this.steps++;
    this.options.onStep?.({ kind: 'prefill', size: group.length, ms: performance.now() - t0 });
    const logits = out.logits!;
    const [, width, vocab] = logits.dims as [number, number, number];
    const data = logits.data as Float32Array;
    const presents = this.spec.presentNames.map((n) => out[n]!);
    group.forEach((seq, row) => {
      if (seq.status !== 'RUNNING') return;
      seq.length = seq.prompt.length;
      seq.pending = { tensors: presents, row, width, length: seq.length };
      const last = (row * width + width - 1) * vocab;
      this.tokens++;
      const done = seq.accept(seq.choose(data.subarray(last, last + vocab)));
      if (!done) this.running.push(seq);
    });
  }

  private async decode(): Promise<void> {
    const rows = this.running;
    this.ensureCache(rows);
    const cache = this.cache!;
    const feeds = decodeFeeds(
      this.spec,
      rows.map((s) => s.nextToken),
      rows.map((s) => s.length),
      cache.width,
      cache.tensors,
    );
    const t0 = performance.now();
    let out: Record<string, ort.Tensor>;
    try {
      out = await this.session.run(feeds);
    } catch (error) {
      this.options.onError?.(error);
      for (const s of rows) s.fail('INTERNAL', 'The model failed to run.');
      this.cache = null;
      this.running = [];
      return;
    }
    this.steps++;
    this.options.onStep?.({ kind: 'decode', size: rows.length, ms: performance.now() - t0 });
    this.cache = { tensors: this.spec.presentNames.map((n) => out[n]!), width: cache.width + 1, rows };
    const logits = out.logits!;
    const vocab = logits.dims[2]!;
    const data = logits.data as Float32Array;
    rows.forEach((seq, row) => {
      seq.length++;
      if (seq.status !== 'RUNNING') return;
      this.tokens++;
      seq.accept(seq.choose(data.subarray(row * vocab, (row + 1) * vocab)));
    });
  }

  /** A sequence's rows are gone from the batch cache (its KV memory is free once the old tensors are). */
  private left(seq: Sequence): void {
    if (seq.cancelledAtStep >= 0) this.maxCancelLagSteps = Math.max(this.maxCancelLagSteps, this.steps - seq.cancelledAtStep);
  }

  /** Makes the batch cache hold exactly `rows`, in order, regathering it when the rows changed. */
  private ensureCache(rows: Sequence[]): void {
    const current = this.cache;
    if (current && current.rows.length === rows.length && current.rows.every((s, i) => s === rows[i])) return;
    const slices: CacheSlice[] = rows.map((seq) => {
      const at = current ? current.rows.indexOf(seq) : -1;
      if (at >= 0) return { tensors: current!.tensors, row: at, width: current!.width, length: seq.length };
      return seq.pending!;
    });
    const gathered = gatherCache(this.spec, slices);
    for (const seq of rows) seq.pending = null;
    for (const seq of current?.rows ?? []) if (!rows.includes(seq)) this.left(seq);
    this.cache = { ...gathered, rows };
  }
}
