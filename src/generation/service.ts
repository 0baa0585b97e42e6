import type { Config } from '../config.js';
import { inferqlError } from '../errors.js';
import type { ModelInstance } from '../models/instance.js';
import type { ModelRegistry } from '../models/registry.js';
import { type DecoderSpec, decoderSpec } from './decoder.js';
import { defaultsFrom, resolveParams, type SamplingConfig } from './params.js';
import { DecodeScheduler, type SchedulerOptions, type SchedulerStats } from './scheduler.js';
import { Sequence } from './sequence.js';
import type { GenerateOptions, GenerationParams, GenerationResult, TokenEvent } from './types.js';

const ENGINE = Symbol('generation-engine');

interface Engine {
  spec: DecoderSpec;
  defaults: Partial<SamplingConfig>;
  scheduler: DecodeScheduler;
}

/**
 * Text generation: validates a request into a Sequence (the only thing the
 * engine accepts), hands it to the model's continuous-batching scheduler and
 * streams its tokens back.
 */
export class GenerationService {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly config: Config,
    private readonly hooks: Pick<SchedulerOptions, 'onStep' | 'onError'> = {},
  ) {}

  private engine(instance: ModelInstance): Engine {
    return instance.extension(ENGINE, (inst) => {
      const spec = decoderSpec(inst);
      const scheduler = new DecodeScheduler(inst.session, spec, {
        model: inst.name,
        maxRunning: this.config.maxRunningSequences,
        maxWaiting: this.config.maxWaitingSequences,
        maxBatchTokens: this.config.maxBatchTokens,
        ...this.hooks,
      });
      return { value: { spec, defaults: defaultsFrom(inst.manifest.generationConfig), scheduler }, dispose: () => scheduler.close() };
    });
  }

  private readyDecoder(model: string): { instance: ModelInstance; engine: Engine } {
    const instance = this.registry.ready(model);
    if (instance.manifest.task !== 'TEXT_GENERATION' || !instance.tokenizer) {
      throw inferqlError('MODEL_TASK_MISMATCH', `Model "${model}" is not a text generation model with a tokenizer.`, { model });
    }
    return { instance, engine: this.engine(instance) };
  }

  /**
   * Validates everything (model, parameters, prompt length, queue room) and
   * only then starts: the returned iterator yields one event per token; the
   * last carries finishReason, usage and metrics. Returning from the iterator,
   * or aborting `signal`, cancels the sequence before the next decode step.
   */
  private prepare(model: string, prompt: string, params: GenerationParams | null | undefined) {
    const { instance, engine } = this.readyDecoder(model);
    const config = resolveParams(params, engine.defaults, { maxTokens: this.config.maxTokens });
    if (typeof prompt !== 'string') throw inferqlError('BAD_GENERATION_PARAMS', 'prompt must be a string.', { param: 'prompt' });
    const ids = instance.tokenizer!.encode(prompt);
    if (ids.length === 0) throw inferqlError('BAD_GENERATION_PARAMS', 'The prompt encodes to no tokens.', { param: 'prompt' });
    const limit = Math.min(this.config.maxPromptTokens, engine.spec.maxPositions - 1);
    if (ids.length > limit) {
      throw inferqlError('BAD_GENERATION_PARAMS', `The prompt has ${ids.length} tokens; the limit is ${limit}.`, { param: 'prompt', promptTokens: ids.length });
    }
    return { instance, engine, config, ids };
  }

  /** Validates a request without starting it (jobs check before they store). */
  check(model: string, prompt: string, params: GenerationParams | null | undefined): void {
    this.prepare(model, prompt, params);
  }

  async open(model: string, prompt: string, params: GenerationParams | null | undefined, options: GenerateOptions = {}): Promise<AsyncIterableIterator<TokenEvent>> {
    const { instance, engine, config, ids } = this.prepare(model, prompt, params);
    const { scheduler } = engine;
    const seq = new Sequence(ids, config, options.priority ?? 0, instance.tokenizer!, engine.spec.eosIds, engine.spec.maxPositions, (s) => scheduler.cancel(s));
    if (options.signal?.aborted) throw inferqlError('CANCELLED');
    const deadlineAt = options.deadlineMs !== undefined ? Date.now() + options.deadlineMs : undefined;
    scheduler.submit(seq, deadlineAt);
    options.signal?.addEventListener('abort', () => scheduler.cancel(seq), { once: true });
    return seq.events;
  }

  async generate(model: string, prompt: string, params: GenerationParams | null | undefined, options: GenerateOptions = {}): Promise<GenerationResult> {
    const events = await this.open(model, prompt, params, options);
    let text = '';
    const tokenIds: number[] = [];
    for await (const event of events) {
      text += event.text;
      if (event.tokenId !== null) tokenIds.push(event.tokenId);
      if (event.finishReason) {
        return { text, tokenIds, finishReason: event.finishReason, usage: event.usage!, metrics: event.metrics! };
      }
    }
    throw inferqlError('CANCELLED');
  }

  /** Scheduler counters for a loaded decoder (running, waiting, steps, live sequence ids). */
  stats(model: string): SchedulerStats | null {
    const instance = this.registry.get(model)?.instance;
    const engine = instance?.peekExtension<Engine>(ENGINE);
    return engine ? engine.scheduler.stats() : null;
  }

  /** Ends every sequence of every model now, each with a closing CANCELLED event (shutdown past its grace period). */
  cancelAll(): void {
    for (const entry of this.registry.list()) entry.instance?.peekExtension<Engine>(ENGINE)?.scheduler.cancelAll();
  }

  /** Every scheduler's stats, by model. */
  allStats(): Record<string, SchedulerStats> {
    const out: Record<string, SchedulerStats> = {};
    for (const entry of this.registry.list()) {
      const stats = this.stats(entry.name);
      if (stats) out[entry.name] = stats;
    }
    return out;
  }
}
