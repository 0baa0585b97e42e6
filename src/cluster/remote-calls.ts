import { randomUUID } from 'node:crypto';
import type { Job as BullJob } from 'bullmq';
import type { ModelCalls } from '../calls/model-calls.js';
import { inferqlError, isInferqlError } from '../errors.js';
import type { GenerateOptions, GenerationParams, GenerationResult, TokenEvent } from '../generation/types.js';
import type { Classification, ClassifyInput, InferResult, RequestOptions } from '../inference/service.js';
import { readResult } from '../jobs/results.js';
import type { JobInput, StoredResult } from '../jobs/types.js';
import type { TensorPayload } from '../runtime/tensor-codec.js';
import type { Channels, StreamInbox } from './channels.js';
import type { ClusterDirectory } from './presence.js';
import type { ClusterQueues } from './queues.js';
import { type CallRequest, decodeError, fromWire } from './wire.js';

/** Finished call records stay this long, so a waiter that looks after the fact still finds the answer. */
const KEEP_FINISHED = { age: 60 };
/** How often a waiting caller also looks at its call's state itself. */
const POLL_MS = 1000;

/**
 * The API side of distributed mode: every model call becomes a BullMQ job on
 * the model's calls queue, and its answer comes back through BullMQ's queue
 * events (a stream's tokens through its own Redis channel). Bad input is
 * refused by the worker with the same error the local call gives.
 */
export class RemoteModelCalls implements ModelCalls {
  constructor(
    private readonly queues: ClusterQueues,
    private readonly directory: ClusterDirectory,
    private readonly channels: Channels,
  ) {}

  async infer(model: string, inputs: readonly TensorPayload[], options: RequestOptions = {}): Promise<InferResult> {
    const stored = await this.call<StoredResult>({ op: 'infer', model, inputs: [...inputs], ...scheduling(options) });
    return readResult(stored) as InferResult;
  }

  classify(model: string, inputs: readonly ClassifyInput[], topK: number | null | undefined, options: RequestOptions = {}): Promise<Classification[]> {
    return this.call<Classification[]>({ op: 'classify', model, inputs: [...inputs], topK: topK ?? null, ...scheduling(options) });
  }

  generate(model: string, prompt: string, params: GenerationParams | null | undefined, options: GenerateOptions = {}): Promise<GenerationResult> {
    return this.call<GenerationResult>({ op: 'generate', model, prompt, params: params ?? null, ...scheduling(options) });
  }

  async check(input: JobInput): Promise<void> {
    await this.call<null>({ op: 'check', model: input.model, input });
  }

  /**
   * Subscribes to a fresh channel, queues the stream, and waits for its first
   * message: an error (bad input, a full queue) is thrown here, as the local
   * open throws it. Leaving early publishes a cancel; the worker drops the
   * sequence before its next step. If the worker dies, the stream ends with
   * UNAVAILABLE once BullMQ finds the call stalled.
   */
  async open(model: string, prompt: string, params: GenerationParams | null | undefined, options: GenerateOptions = {}): Promise<AsyncIterableIterator<TokenEvent>> {
    if (options.signal?.aborted) throw inferqlError('CANCELLED');
    await this.directory.requireReady(model);
    const streamId = randomUUID();
    const inbox = await this.channels.openStream(streamId);
    let job: BullJob;
    try {
      job = await this.add({ op: 'stream', model, prompt, params: params ?? null, streamId, ...scheduling(options) });
    } catch (error) {
      inbox.close();
      throw error;
    }
    void this.settled(model, job).then((error) => error && inbox.fail(error));
    const cancel = () => {
      inbox.close();
      void this.channels.cancel('stream', streamId).catch(() => undefined);
    };
    options.signal?.addEventListener('abort', cancel, { once: true });
    const first = await readEvent(inbox);
    if (first === null) throw inferqlError('CANCELLED');
    let pending: TokenEvent | null = first;
    let done = first.finishReason !== null;
    if (done) inbox.close();
    const iterator: AsyncIterableIterator<TokenEvent> = {
      next: async () => {
        if (pending) {
          const value = pending;
          pending = null;
          return { value, done: false };
        }
        if (done) return { value: undefined, done: true };
        const event = await readEvent(inbox);
        if (event === null) {
          done = true;
          return { value: undefined, done: true };
        }
        if (event.finishReason !== null) {
          done = true;
          inbox.close();
        }
        return { value: event, done: false };
      },
      return: async () => {
        if (!done) cancel();
        done = true;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Queues a call and waits for its answer (or its error, with the worker's code). */
  private async call<T>(request: CallRequest): Promise<T> {
    await this.directory.requireReady(request.model);
    const job = await this.add(request);
    try {
      return (await this.outcome(request.model, job)) as T;
    } catch (error) {
      throw isInferqlError(error) ? error : decodeError((error as Error).message);
    }
  }

  /** Adds a call to its model's queue, with its completion events already being listened to. */
  private async add(request: CallRequest): Promise<BullJob> {
    try {
      await this.queues.callEvents(request.model);
      return await this.queues.calls(request.model).add(request.op, request, { removeOnComplete: KEEP_FINISHED, removeOnFail: KEEP_FINISHED });
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * The call's return value, or a rejection with its failed reason. Queue
   * events bring it at once; a poll of the job's state every second is the
   * safety net for an event that went by unheard (a QueueEvents reader that
   * had not issued its first read yet, a Redis restart).
   */
  private async outcome(model: string, job: BullJob): Promise<unknown> {
    let settled = false;
    const byEvent = (async () => job.waitUntilFinished(await this.queues.callEvents(model)))();
    const byPoll = (async () => {
      while (!settled) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (settled) break;
        const fresh = await this.queues
          .calls(model)
          .getJob(job.id!)
          .catch(() => undefined);
        if (fresh === undefined) continue;
        const state = await fresh.getState().catch(() => 'unknown');
        if (state === 'completed') return fresh.returnvalue;
        if (state === 'failed') throw new Error(fresh.failedReason);
      }
      return new Promise<never>(() => undefined);
    })();
    try {
      return await Promise.race([byEvent, byPoll]);
    } finally {
      settled = true;
      byEvent.catch(() => undefined);
      byPoll.catch(() => undefined);
    }
  }

  /** Resolves with the error that ended a call, or null when it completed. */
  private async settled(model: string, job: BullJob): Promise<ReturnType<typeof decodeError> | null> {
    try {
      await this.outcome(model, job);
      return null;
    } catch (error) {
      return decodeError((error as Error).message);
    }
  }
}

function scheduling(options: RequestOptions): { priority?: number; deadlineAt?: number } {
  return {
    ...(options.priority !== undefined ? { priority: options.priority } : {}),
    ...(options.deadlineMs !== undefined ? { deadlineAt: Date.now() + options.deadlineMs } : {}),
  };
}

/** The next token of a stream; a stream's error message is thrown with its code. */
async function readEvent(inbox: StreamInbox): Promise<TokenEvent | null> {
  const message = await inbox.next();
  if (message === null) return null;
  if ('error' in message) {
    inbox.close();
    throw fromWire(message.error);
  }
  return message.event;
}

function unavailable(error: unknown) {
  return inferqlError('UNAVAILABLE', `The job queue is unreachable (${(error as Error).message}); retry.`);
}
