import type { GenerationService } from '../generation/service.js';
import type { GenerateOptions, GenerationParams, GenerationResult, TokenEvent } from '../generation/types.js';
import type { Classification, ClassifyInput, InferenceService, InferResult, RequestOptions } from '../inference/service.js';
import type { JobInput } from '../jobs/types.js';
import type { TensorPayload } from '../runtime/tensor-codec.js';

/**
 * Every way to run a model, as resolvers and jobs see it. In one process these
 * go straight to the local batchers and decode schedulers; in distributed mode
 * an API process sends each one to a worker as a BullMQ job (RemoteModelCalls),
 * and the worker runs it through its own LocalModelCalls.
 */
export interface ModelCalls {
  infer(model: string, inputs: readonly TensorPayload[], options?: RequestOptions): Promise<InferResult>;
  classify(model: string, inputs: readonly ClassifyInput[], topK: number | null | undefined, options?: RequestOptions): Promise<Classification[]>;
  generate(model: string, prompt: string, params: GenerationParams | null | undefined, options?: GenerateOptions): Promise<GenerationResult>;
  /** Validates, then streams one event per token (see GenerationService.open). */
  open(model: string, prompt: string, params: GenerationParams | null | undefined, options?: GenerateOptions): Promise<AsyncIterableIterator<TokenEvent>>;
  /** The checks the matching call makes before it runs anything: a job with bad input is refused at submission. */
  check(input: JobInput): Promise<void>;
}

export class LocalModelCalls implements ModelCalls {
  constructor(
    private readonly inference: InferenceService,
    private readonly generation: GenerationService,
  ) {}

  infer(model: string, inputs: readonly TensorPayload[], options?: RequestOptions): Promise<InferResult> {
    return this.inference.infer(model, inputs, options);
  }

  classify(model: string, inputs: readonly ClassifyInput[], topK: number | null | undefined, options?: RequestOptions): Promise<Classification[]> {
    return this.inference.classify(model, inputs, topK, options);
  }

  generate(model: string, prompt: string, params: GenerationParams | null | undefined, options?: GenerateOptions): Promise<GenerationResult> {
    return this.generation.generate(model, prompt, params, options);
  }

  open(model: string, prompt: string, params: GenerationParams | null | undefined, options?: GenerateOptions): Promise<AsyncIterableIterator<TokenEvent>> {
    return this.generation.open(model, prompt, params, options);
  }

  async check(input: JobInput): Promise<void> {
    if (input.kind === 'INFER') this.inference.checkInfer(input.model, input.inputs);
    else if (input.kind === 'CLASSIFY') this.inference.checkClassify(input.model, input.inputs, input.topK);
    else this.generation.check(input.model, input.prompt, input.params);
  }
}
