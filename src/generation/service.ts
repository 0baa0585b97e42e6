import type { Config } from '../config.js';
import { inferqlError } from '../errors.js';
import type { ModelInstance } from '../models/instance.js';
import type { ModelRegistry } from '../models/registry.js';
import { type DecoderSpec, decoderSpec } from './decoder.js';
import { DecodeEngine, type EngineHooks } from './engine.js';
import { observeTokens } from './observe.js';
import { defaultsFrom, resolveParams, type SamplingConfig } from './params.js';
import type { SchedulerStats } from './protocol.js';
import type { GenerateOptions, GenerationParams, GenerationResult, TokenEvent } from './types.js';

const ENGINE = Symbol('generation-engine');

const isDecoder = (instance: ModelInstance) => instance.manifest.task === 'TEXT_GENERATION' && instance.tokenizer !== null && instance.manifest.tokenizerPath !== null;

interface Engine {
  spec: DecoderSpec;
  defaults: Partial<SamplingConfig>;
  decoder: DecodeEngine;
}

/**
 * Text generation: validates a request (model, parameters, prompt, queue
 * room) into prompt ids and a SamplingConfig, the only shape the engine
 * accepts, hands it to the model's decode worker (continuous batching) and
 * streams its tokens back.
 */
export class GenerationService {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly config: Config,
    private readonly hooks: EngineHooks & { onToken?: (model: string, event: TokenEvent, msSinceLast: number, first: boolean) => void } = {},
  ) {}

  private engine(instance: ModelInstance): Engine {
    return instance.extension(ENGINE, (inst) => {
      const spec = decoderSpec(inst);
      const decoder = new DecodeEngine(
        {
          model: inst.name,
          onnxPath: inst.manifest.onnxPath,
          tokenizerPath: inst.manifest.tokenizerPath!,
          tokenizerConfigPath: inst.manifest.tokenizerConfigPath,
          spec,
          maxRunning: this.config.maxRunningSequences,
          maxWaiting: this.config.maxWaitingSequences,
          maxBatchTokens: this.config.maxBatchTokens,
        },
        this.hooks,
      );
      return { value: { spec, defaults: defaultsFrom(inst.manifest.generationConfig), decoder }, dispose: () => decoder.close() };
    });
  }

  /**
   * Starts a ready decoder's worker ahead of its first request (called when
   * a model becomes READY); does nothing for other models.
   */
  start(model: string): void {
    const instance = this.registry.get(model)?.instance;
    if (!instance || !isDecoder(instance)) return;
    try {
      this.engine(instance).decoder.start();
    } catch (error) {
      this.hooks.onError?.(error);
    }
  }

  private readyDecoder(model: string): { instance: ModelInstance; engine: Engine } {
    const instance = this.registry.ready(model);
    if (!isDecoder(instance)) {
      throw inferqlError('MODEL_TASK_MISMATCH', `Model "${model}" is not a text generation model with a tokenizer.`, { model });
    }
    return { instance, engine: this.engine(instance) };
  }

  /** Checks the model, parameters and prompt; throws the first problem as a GraphQL error. */
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

  /**
   * Validates everything (model, parameters, prompt length, queue room) and
   * only then starts: the returned iterator yields one event per token; the
   * last carries finishReason, usage and metrics. Returning from the iterator,
   * or aborting `signal`, cancels the sequence before the next decode step.
   */
  async open(model: string, prompt: string, params: GenerationParams | null | undefined, options: GenerateOptions = {}): Promise<AsyncIterableIterator<TokenEvent>> {
    const { engine, config, ids } = this.prepare(model, prompt, params);
    if (options.signal?.aborted) throw inferqlError('CANCELLED');
    const submittedAt = performance.now();
    const events = engine.decoder.submit({ prompt: ids, config, priority: options.priority ?? 0, deadlineMs: options.deadlineMs, signal: options.signal });
    const onToken = this.hooks.onToken;
    return onToken ? observeTokens(events, submittedAt, (event, ms, first) => onToken(model, event, ms, first)) : events;
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
    return engine ? engine.decoder.stats() : null;
  }

  /**
   * Holds a decoder's scheduler after `turns` more turns (null lifts it), so
   * tests can make a race certain: "the client left while its sequence was
   * still running". Not for production use.
   */
  limitTurns(model: string, turns: number | null): void {
    const { engine } = this.readyDecoder(model);
    engine.decoder.limitTurns(turns);
  }

  /** Ends every sequence of every model now, each with a closing CANCELLED event (shutdown past its grace period). */
  cancelAll(): void {
    for (const entry of this.registry.list()) entry.instance?.peekExtension<Engine>(ENGINE)?.decoder.cancelAll();
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
