import { Worker } from 'node:worker_threads';
import { inferqlError } from '../errors.js';
import type { SamplingConfig } from './params.js';
import { type EngineCommand, type EngineReport, type SchedulerStats, type StepInfo, type WorkerInit, wallMs } from './protocol.js';
import { TokenStream } from './stream.js';

export interface EngineHooks {
  onStep?: (event: StepInfo & { model: string }) => void;
  onError?: (error: unknown) => void;
}

export interface SubmitRequest {
  prompt: number[];
  config: SamplingConfig;
  priority: number;
  deadlineMs?: number;
  signal?: AbortSignal;
}

const EMPTY_STATS: SchedulerStats = { running: 0, waiting: 0, steps: 0, tokens: 0, live: [], cancelled: 0, maxCancelLagSteps: 0, held: false };

let nextSequenceId = 1;

/**
 * Starts the decode worker from TypeScript source (through tsx, which runs
 * this project) or from compiled JavaScript, whichever this module is.
 */
function spawnWorker(init: WorkerInit): Worker {
  const fromSource = new URL(import.meta.url).pathname.endsWith('.ts');
  const url = new URL(`./worker${fromSource ? '.ts' : '.js'}`, import.meta.url);
  if (!fromSource) return new Worker(url, { workerData: init });
  const source = JSON.stringify(url.href);
  const boot = `import('tsx/esm/api').then(({ tsImport }) => tsImport(${source}, ${source}));`;
  return new Worker(boot, { eval: true, workerData: init });
}

/**
 * The main thread's side of one model's decode worker. It holds each live
 * sequence's event stream, bounds the queue (QUEUE_FULL is decided here,
 * before anything is sent), forwards cancels, and keeps the worker's latest
 * stats. Everything else (batch, KV cache, sampling) is the worker's.
 */
export class DecodeEngine {
  private worker: Worker | null = null;
  private readonly streams = new Map<number, TokenStream>();
  private snapshot: SchedulerStats = EMPTY_STATS;
  private closing = false;
  private closed: Promise<void> | null = null;
  private onClosed: (() => void) | null = null;

  constructor(
    private readonly init: WorkerInit,
    private readonly hooks: EngineHooks = {},
  ) {}

  /** Starts the worker now (it loads its session and warms up) rather than on the first request. */
  start(): void {
    if (this.worker || this.closing) return;
    const worker = spawnWorker(this.init);
    this.worker = worker;
    worker.on('message', (report: EngineReport) => this.receive(report));
    worker.on('error', (error) => this.hooks.onError?.(error));
    worker.on('exit', () => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.failAll('INTERNAL', 'The decode worker stopped.');
      this.onClosed?.();
    });
  }

  /**
   * Hands a validated request to the worker and returns its event stream.
   * Throws QUEUE_FULL when every batch slot and the waiting queue are taken.
   */
  submit(request: SubmitRequest): TokenStream {
    if (this.closing) throw inferqlError('MODEL_NOT_READY', `Model "${this.init.model}" is unloading.`);
    if (this.streams.size >= this.init.maxRunning + this.init.maxWaiting) {
      const waiting = this.streams.size - this.init.maxRunning;
      throw inferqlError('QUEUE_FULL', `Model "${this.init.model}" has ${waiting} generations waiting; retry later.`, { retryAfterMs: 1000 });
    }
    this.start();
    const id = nextSequenceId++;
    const stream = new TokenStream(() => this.cancel(id));
    this.streams.set(id, stream);
    const submittedAt = wallMs();
    this.send({
      type: 'submit',
      id,
      prompt: request.prompt,
      config: request.config,
      priority: request.priority,
      submittedAt,
      deadlineAt: request.deadlineMs !== undefined ? submittedAt + request.deadlineMs : null,
    });
    request.signal?.addEventListener('abort', () => stream.cancel(), { once: true });
    return stream;
  }

  /** The client left: the worker drops the sequence before its next step (its last event then closes the stream). */
  private cancel(id: number): void {
    if (this.streams.has(id)) this.send({ type: 'cancel', id });
  }

  /** Ends every sequence now with CANCELLED (shutdown past its grace period). */
  cancelAll(): void {
    if (this.streams.size > 0) this.send({ type: 'cancelAll' });
  }

  /** See DecodeScheduler.limitTurns (race tests). */
  limitTurns(turns: number | null): void {
    this.start();
    this.send({ type: 'limitTurns', turns });
  }

  /**
   * The worker's counters as of its last step. Requests sent but not yet seen
   * by the worker count as waiting; `live` is what the worker still holds.
   */
  stats(): SchedulerStats {
    const s = this.snapshot;
    return { ...s, waiting: Math.max(s.waiting, this.streams.size - s.running) };
  }

  /** Stops taking requests, lets running and waiting sequences finish, then stops the worker. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    const worker = this.worker;
    if (!worker) return (this.closed = Promise.resolve());
    this.closed = new Promise<void>((resolve) => {
      this.onClosed = resolve;
      worker.postMessage({ type: 'close' } satisfies EngineCommand);
    }).then(async () => {
      this.worker = null;
      await worker.terminate();
      this.failAll('MODEL_NOT_READY', `Model "${this.init.model}" was unloaded.`);
    });
    return this.closed;
  }

  private send(command: EngineCommand): void {
    this.worker?.postMessage(command);
  }

  private receive(report: EngineReport): void {
    switch (report.type) {
      case 'outputs': {
        this.snapshot = report.stats;
        for (const step of report.steps) this.hooks.onStep?.({ model: this.init.model, ...step });
        for (const output of report.outputs) {
          const stream = this.streams.get(output.id);
          if (!stream) continue;
          if ('error' in output) {
            this.streams.delete(output.id);
            stream.fail(inferqlError(output.error.code, output.error.message));
          } else {
            if (output.event.finishReason) this.streams.delete(output.id);
            stream.push(output.event);
          }
        }
        return;
      }
      case 'runError':
        this.hooks.onError?.(new Error(report.message));
        return;
      case 'fatal':
        this.hooks.onError?.(new Error(report.message));
        void this.worker?.terminate();
        return;
      case 'closed':
        this.onClosed?.();
        return;
      case 'ready':
        return;
    }
  }

  private failAll(code: 'INTERNAL' | 'MODEL_NOT_READY', message: string): void {
    for (const [id, stream] of this.streams) {
      this.streams.delete(id);
      stream.fail(inferqlError(code, message));
    }
  }
}
