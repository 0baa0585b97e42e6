import { randomUUID } from 'node:crypto';
import type { Job as BullJob } from 'bullmq';
import type { ModelCalls } from '../calls/model-calls.js';
import { inferqlError, type InferqlError, isInferqlError } from '../errors.js';
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
/** After its call completed, how long a stream waits for messages still on their way before it calls them lost. */
const STREAM_GRACE_MS = 2000;
/** States in which no worker has taken a call yet. */
const NOT_STARTED = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children']);

export interface RemoteCallOptions {
  /** Queue deadline of a call that names none (DEADLINE_MS), as in one process. */
  defaultDeadlineMs: number;
}

/**
 * The API side of distributed mode: every model call becomes a BullMQ job on
 * the model's calls queue, and its answer comes back through BullMQ's queue
 * events (a stream's tokens through its own Redis channel). Bad input is
 * refused by the worker with the same error the local call gives. A call no
 * worker takes before its deadline is withdrawn with TIMEOUT, as a request
 * that waits too long in a local queue is.
 */
export class RemoteModelCalls implements ModelCalls {
  constructor(
    private readonly queues: ClusterQueues,
    private readonly directory: ClusterDirectory,
    private readonly channels: Channels,
    private readonly options: RemoteCallOptions,
  ) {}

  async infer(model: string, inputs: readonly TensorPayload[], options: RequestOptions = {}): Promise<InferResult> {
    const stored = await this.call<StoredResult>({ op: 'infer', model, inputs: [...inputs], ...this.scheduling(options) });
    return readResult(stored) as InferResult;
  }

  classify(model: string, inputs: readonly ClassifyInput[], topK: number | null | undefined, options: RequestOptions = {}): Promise<Classification[]> {
    return this.call<Classification[]>({ op: 'classify', model, inputs: [...inputs], topK: topK ?? null, ...this.scheduling(options) });
  }

  generate(model: string, prompt: string, params: GenerationParams | null | undefined, options: GenerateOptions = {}): Promise<GenerationResult> {
    return this.call<GenerationResult>({ op: 'generate', model, prompt, params: params ?? null, ...this.scheduling(options) });
  }

  async check(input: JobInput): Promise<void> {
    await this.call<null>({ op: 'check', model: input.model, input, deadlineAt: Date.now() + this.options.defaultDeadlineMs });
  }

  /**
   * Subscribes to a fresh channel, queues the stream, and waits for its first
   * message: an error (bad input, a full queue) is thrown here, as the local
   * open throws it. Leaving early publishes a cancel (and withdraws the call
   * if no worker has it yet); the worker drops the sequence before its next
   * step. If the worker dies, or tokens are lost on the way, the stream ends
   * with UNAVAILABLE.
   */
  async open(model: string, prompt: string, params: GenerationParams | null | undefined, options: GenerateOptions = {}): Promise<AsyncIterableIterator<TokenEvent>> {
    if (options.signal?.aborted) throw inferqlError('CANCELLED');
    await this.directory.requireReady(model);
    const streamId = randomUUID();
    const inbox = await this.channels.openStream(streamId);
    let job: BullJob;
    try {
      job = await this.add({ op: 'stream', model, prompt, params: params ?? null, streamId, ...this.scheduling(options) });
    } catch (error) {
      inbox.close();
      throw error;
    }
    const cancel = () => {
      inbox.close();
      void this.channels.cancel('stream', streamId).catch(() => undefined);
      void job.remove().catch(() => undefined);
    };
    void this.outcome(job).then(
      // Completed: whatever is still on its way arrives within the grace, or is lost.
      () => setTimeout(() => inbox.fail(inferqlError('UNAVAILABLE', 'The end of the stream was lost on the way from its worker; retry.')), STREAM_GRACE_MS).unref(),
      (error) => {
        inbox.fail(toCallError(error));
        void this.channels.cancel('stream', streamId).catch(() => undefined);
      },
    );
    options.signal?.addEventListener('abort', cancel, { once: true });
    let expected = 0;
    /** The next token; a gap in the indexes means tokens were lost on the way. */
    const read = async (): Promise<TokenEvent | null> => {
      const event = await readEvent(inbox);
      if (event && event.index !== expected && event.tokenId !== null) {
        cancel();
        throw inferqlError('UNAVAILABLE', `Tokens ${expected} to ${event.index - 1} were lost on the way from the worker; retry.`);
      }
      if (event) expected = event.index + 1;
      return event;
    };
    const first = await read();
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
        const event = await read();
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

  /** Every call carries the wall-clock time by which a worker must have started it. */
  private scheduling(options: RequestOptions): { priority?: number; deadlineAt: number } {
    return {
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      deadlineAt: Date.now() + (options.deadlineMs ?? this.options.defaultDeadlineMs),
    };
  }

  /** Queues a call and waits for its answer (or its error, with the worker's code). */
  private async call<T>(request: CallRequest): Promise<T> {
    await this.directory.requireReady(request.model);
    const job = await this.add(request);
    try {
      return (await this.outcome(job)) as T;
    } catch (error) {
      throw toCallError(error);
    }
  }

  /** Adds a call to its model's queue, with its completion events already being listened to. */
  private async add(request: CallRequest): Promise<BullJob> {
    try {
      await this.queues.callEvents(request.model);
      return await this.queues.calls(request.model).add(request.op, request, { removeOnComplete: KEEP_FINISHED, removeOnFail: KEEP_FINISHED });
    } catch (error) {
      throw inferqlError('UNAVAILABLE', `The job queue is unreachable (${(error as Error).message}); retry.`);
    }
  }

  /**
   * The call's return value, or a rejection with its failed reason. Queue
   * events bring it at once; a poll of the job's state every second is the
   * safety net for an event that went by unheard (a QueueEvents reader that
   * had not issued its first read yet, a Redis restart), and withdraws a call
   * no worker has taken by its deadline.
   */
  private async outcome(job: BullJob<CallRequest>): Promise<unknown> {
    const model = job.data.model;
    const events = await this.queues.callEvents(model);
    const id = job.id!;
    let stop = () => {};
    const byEvent = new Promise<unknown>((resolve, reject) => {
      const completed = ({ returnvalue }: { returnvalue: unknown }) => resolve(returnvalue);
      const failed = ({ failedReason }: { failedReason: string }) => reject(new Error(failedReason));
      events.on(`completed:${id}` as 'completed', completed as never);
      events.on(`failed:${id}` as 'failed', failed as never);
      stop = () => {
        events.off(`completed:${id}` as 'completed', completed as never);
        events.off(`failed:${id}` as 'failed', failed as never);
      };
    });
    let settled = false;
    const byPoll = (async (): Promise<unknown> => {
      while (!settled) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (settled) break;
        const answer = await this.look(job);
        if (answer) return answer.value;
      }
      return new Promise<never>(() => undefined);
    })();
    try {
      return await Promise.race([byEvent, byPoll]);
    } finally {
      settled = true;
      stop();
    }
  }

  /** The call's state read from Redis: its answer if it has one; throws if it failed, vanished or missed its deadline. */
  private async look(job: BullJob<CallRequest>): Promise<{ value: unknown } | null> {
    const { deadlineAt, model } = job.data;
    let fresh: BullJob | undefined;
    let state: string;
    let served: boolean;
    try {
      fresh = await this.queues.calls(model).getJob(job.id!);
      state = fresh ? await fresh.getState() : 'missing';
      served = (await this.directory.get(model))?.status === 'READY';
    } catch {
      // Redis is away: look again next time (every request is refused meanwhile anyway).
      return null;
    }
    if (!fresh) throw new Error('the call vanished from its queue (Redis lost its data)');
    if (state === 'completed') return { value: fresh.returnvalue };
    if (state === 'failed') throw new Error(fresh.failedReason);
    if (NOT_STARTED.has(state)) {
      // Not taken yet: withdrawn (unless a worker takes it in the meantime, and then answers) when
      // its deadline has passed, or when no live worker serves the model any more.
      let reason: InferqlError | null = null;
      if (deadlineAt !== undefined && Date.now() > deadlineAt) reason = inferqlError('TIMEOUT', 'No worker started the call before its deadline.');
      else if (!served) reason = inferqlError('MODEL_NOT_READY', `No live worker serves "${model}" now.`, { model });
      if (reason && (await fresh.remove().then(() => true, () => false))) throw reason;
    } else if (!served) {
      // Taken by a worker that has since stopped serving the model: with no worker left on its
      // queue, nobody would find the call stalled, so it is given up here.
      throw inferqlError('MODEL_NOT_READY', `No live worker serves "${model}" now.`, { model });
    }
    return null;
  }
}

/** A failed call's error as the caller sees it: the worker's own, or UNAVAILABLE. */
function toCallError(error: unknown): InferqlError {
  return isInferqlError(error) ? error : decodeError((error as Error).message);
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
