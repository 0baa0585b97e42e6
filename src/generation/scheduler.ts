import type ort from 'onnxruntime-node';
import { inferqlError } from '../errors.js';
import type { ModelSession } from '../runtime/session.js';
import { type CacheSlice, type DecoderSpec, decodeFeeds, gatherCache, prefillFeeds } from './decoder.js';
import type { Sequence } from './sequence.js';

export interface SchedulerOptions {
  model: string;
  maxRunning: number;
  maxWaiting: number;
  /** Prompt tokens one prefill may take (at least one sequence is always admitted). */
  maxBatchTokens: number;
  onStep?: (event: { model: string; kind: 'prefill' | 'decode'; size: number; ms: number }) => void;
  onError?: (error: unknown) => void;
}

export interface SchedulerStats {
  running: number;
  waiting: number;
  steps: number;
  /** Tokens generated since the model loaded. */
  tokens: number;
  /** Ids of every sequence the scheduler still holds (running, waiting or in the cache). */
  live: number[];
}

/**
 * Continuous batching for one model (the TGI / vLLM loop). The scheduler
 * alone owns its queue and batch; others talk to it through `submit` and
 * `cancel`. Each turn: drop cancelled sequences → admit waiting ones while
 * the slots and token budget allow (one prefill run) → one decode step for
 * every running sequence (one session.run) → hand each its token → drop the
 * finished. The batch's KV cache is reused as is while its rows stay the same
 * and regathered when they change.
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

  constructor(
    private readonly session: ModelSession,
    private readonly spec: DecoderSpec,
    private readonly options: SchedulerOptions,
  ) {}

  submit(seq: Sequence, deadlineAt?: number): void {
    if (this.closed) throw inferqlError('MODEL_NOT_READY', `Model "${this.options.model}" is unloading.`);
    if (this.waiting.length >= this.options.maxWaiting) {
      throw inferqlError('QUEUE_FULL', `Model "${this.options.model}" has ${this.waiting.length} generations waiting; retry later.`, { retryAfterMs: 1000 });
    }
    let at = this.waiting.findIndex((w) => w.priority < seq.priority);
    if (at < 0) at = this.waiting.length;
    this.waiting.splice(at, 0, seq);
    if (deadlineAt !== undefined) {
      const timer = setTimeout(() => {
        if (seq.status !== 'WAITING') return;
        this.waiting = this.waiting.filter((w) => w !== seq);
        seq.fail(inferqlError('TIMEOUT', 'The deadline passed before the generation started.'));
      }, Math.max(0, deadlineAt - Date.now()));
      timer.unref();
    }
    this.wake();
  }

  /** The client left: a waiting sequence goes at once, a running one before the next step. */
  cancel(seq: Sequence): void {
    if (seq.status === 'FINISHED') return;
    if (seq.status === 'WAITING') this.waiting = this.waiting.filter((w) => w !== seq);
    seq.cancel();
    this.wake();
  }

  stats(): SchedulerStats {
    const live = new Set([...this.waiting, ...this.running, ...(this.cache?.rows ?? [])].map((s) => s.id));
    return { running: this.running.length, waiting: this.waiting.length, steps: this.steps, tokens: this.tokens, live: [...live] };
  }

  /** Stops admitting; resolves when every running and waiting sequence has finished. */
  async close(): Promise<void> {
    this.closed = true;
    if (!this.looping && this.running.length === 0 && this.waiting.length === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
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

  private async loop(): Promise<void> {
    try {
      while (this.running.length > 0 || this.waiting.length > 0) {
        this.running = this.running.filter((s) => s.status === 'RUNNING');
        const admitted = this.admit();
        if (admitted.length > 0) await this.prefill(admitted);
        this.running = this.running.filter((s) => s.status === 'RUNNING');
        if (this.running.length > 0) await this.decode();
        // Let I/O (new requests, cancellations, event delivery) in between steps.
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = [];
      this.cache = null;
      this.looping = false;
      this.idle.splice(0).forEach((r) => r());
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
      next.admittedAt = performance.now();
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
      for (const s of group) s.fail(inferqlError('INTERNAL'));
      return;
    }
    this.steps++;
    this.options.onStep?.({ model: this.options.model, kind: 'prefill', size: group.length, ms: performance.now() - t0 });
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
      for (const s of rows) s.fail(inferqlError('INTERNAL'));
      this.cache = null;
      this.running = [];
      return;
    }
    this.steps++;
    this.options.onStep?.({ model: this.options.model, kind: 'decode', size: rows.length, ms: performance.now() - t0 });
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
    this.cache = { ...gathered, rows };
  }
}
