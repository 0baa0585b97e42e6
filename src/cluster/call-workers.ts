import { type Job as BullJob, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ModelCalls } from '../calls/model-calls.js';
import { isInferqlError } from '../errors.js';
import { storeInfer } from '../jobs/results.js';
import type { Logger } from '../log.js';
import type { ModelRegistry } from '../models/registry.js';
import type { Channels } from './channels.js';
import { ModelWorkers } from './model-workers.js';
import { ClusterQueues } from './queues.js';
import { type CallRequest, encodeError, remainingMs, toWire } from './wire.js';

export interface CallWorkerOptions {
  connection: Redis;
  prefix: string;
  /** Calls taken at once per model: they meet in the local batcher or decode scheduler. */
  concurrency: number;
  stallMs: number;
  log: Logger;
}

/**
 * The worker side of calls: one BullMQ Worker per READY model on its calls
 * queue, each call run through this process's LocalModelCalls, so calls
 * from every API process share this worker's batches and decode steps.
 */
export class CallWorkers {
  private readonly workers: ModelWorkers;
  /** Streams running here, by id, to stop when their client leaves. */
  private readonly streams = new Map<string, AbortController>();

  constructor(
    private readonly local: ModelCalls,
    registry: ModelRegistry,
    private readonly channels: Channels,
    private readonly options: CallWorkerOptions,
  ) {
    this.workers = new ModelWorkers(registry, (model) => this.worker(model));
  }

  async start(): Promise<void> {
    await this.channels.onCancel((kind, id) => {
      if (kind === 'stream') this.streams.get(id)?.abort();
    });
    this.sync();
  }

  /** Takes calls for every READY model and none for the others (call on every model event). */
  sync(): void {
    this.workers.sync();
  }

  /** Waits for the calls in hand (the grace period is the caller's), then stops taking more. */
  close(): Promise<void> {
    return this.workers.close();
  }

  /** Stops taking new calls; those in hand go on. */
  pause(): void {
    this.workers.pause();
  }

  private worker(model: string): Worker {
    const { connection, prefix, concurrency, stallMs, log } = this.options;
    const worker = new Worker(ClusterQueues.callsName(model), (job: BullJob<CallRequest>) => this.run(job.data), {
      connection,
      prefix,
      concurrency,
      lockDuration: stallMs,
      stalledInterval: stallMs,
      // A call whose worker died is not run again: its caller gets UNAVAILABLE and may retry.
      maxStalledCount: 0,
    });
    worker.on('error', (error) => log.warn('calls worker error', { model, error: error.message }));
    return worker;
  }

  /** Runs one call; an error goes back as the failed reason, with its code. */
  private async run(request: CallRequest): Promise<unknown> {
    try {
      switch (request.op) {
        case 'infer':
          return storeInfer(await this.local.infer(request.model, request.inputs, { priority: request.priority, deadlineMs: remainingMs(request.deadlineAt) }));
        case 'classify':
          return await this.local.classify(request.model, request.inputs, request.topK, { priority: request.priority, deadlineMs: remainingMs(request.deadlineAt) });
        case 'generate':
          return await this.local.generate(request.model, request.prompt, request.params, { priority: request.priority, deadlineMs: remainingMs(request.deadlineAt) });
        case 'check':
          await this.local.check(request.input);
          return null;
        case 'stream':
          await this.stream(request);
          return null;
      }
    } catch (error) {
      if (!isInferqlError(error)) this.options.log.error('call failed', { op: request.op, model: request.model, error: String(error) });
      throw new UnrecoverableError(encodeError(error));
    }
  }

  /** Publishes each token on the stream's channel; an error becomes the stream's last message. */
  private async stream(request: Extract<CallRequest, { op: 'stream' }>): Promise<void> {
    const controller = new AbortController();
    this.streams.set(request.streamId, controller);
    try {
      const events = await this.local.open(request.model, request.prompt, request.params, {
        priority: request.priority,
        deadlineMs: remainingMs(request.deadlineAt),
        signal: controller.signal,
      });
      for await (const event of events) {
        await this.channels.publishStream(request.streamId, { event });
        if (event.finishReason) break;
      }
    } catch (error) {
      await this.channels.publishStream(request.streamId, { error: toWire(error) });
    } finally {
      this.streams.delete(request.streamId);
    }
  }
}
