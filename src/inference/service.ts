import ort from 'onnxruntime-node';
import type { Config } from '../config.js';
import { inferqlError, isInferqlError } from '../errors.js';
import type { ModelInstance } from '../models/instance.js';
import type { ModelRegistry } from '../models/registry.js';
import type { Feeds } from '../runtime/session.js';
import type { NamedTensor, TensorPayload } from '../runtime/tensor-codec.js';
import { type BatchMetrics, ModelBatcher, type SubmitOptions } from './batcher.js';
import { isBatchable, isPaddable } from './collate.js';
import { checkBatchAxis, checkShape, validateInputs } from './validate.js';

export interface RequestOptions {
  priority?: number;
  deadlineMs?: number;
  signal?: AbortSignal;
}

export interface InferResult {
  outputs: NamedTensor[];
  metrics: BatchMetrics;
}

/** One classifier input: text for models with a tokenizer, or a feature vector. */
export type ClassifyInput = { text: string; values?: never } | { values: readonly number[]; text?: never };

export interface LabelScore {
  label: string;
  score: number;
}

export interface Classification {
  labels: LabelScore[];
  metrics: BatchMetrics;
}

export interface BatchEvent {
  model: string;
  size: number;
  computeMs: number;
  queueMs: number[];
}

const BATCHER = Symbol('batcher');

/**
 * infer and classify: validate, encode, hand to the model's batcher, decode.
 * Everything that runs a tensor model goes through here, so every caller
 * (HTTP, WebSocket, jobs) shares the same batches.
 */
export class InferenceService {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly config: Config,
    private readonly hooks: {
      onBatch?: (e: BatchEvent) => void;
      /** Each request's end: null on success, else its error code. */
      onOutcome?: (model: string, code: string | null) => void;
      onError?: (e: unknown) => void;
    } = {},
  ) {}

  /** Requests waiting per loaded model. */
  queues(): { name: string; queued: number }[] {
    return this.registry
      .list()
      .flatMap((entry) => {
        const batcher = entry.instance?.peekExtension<ModelBatcher>(BATCHER);
        return batcher ? [{ name: entry.name, queued: batcher.queued }] : [];
      });
  }

  private async observe<T>(model: string, work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      this.hooks.onOutcome?.(model, null);
      return result;
    } catch (error) {
      this.hooks.onOutcome?.(model, isInferqlError(error) ? error.code : 'INTERNAL');
      throw error;
    }
  }

  batcher(instance: ModelInstance): ModelBatcher {
    return instance.extension(BATCHER, (inst) => {
      const { manifest, session } = inst;
      const b = manifest.batching;
      const serverMax = this.config.maxBatchSize;
      const batcher = new ModelBatcher({
        model: manifest.name,
        maxBatchSize: serverMax === 1 ? 1 : (b.maxBatchSize ?? serverMax),
        maxQueueDelayMs: b.maxQueueDelayMs ?? this.config.maxQueueDelayMs,
        preferredBatchSizes: b.preferredBatchSizes ?? [],
        maxQueueSize: b.maxQueueSize ?? this.config.maxQueueSize,
        inputs: session.inputs,
        outputs: session.outputs,
        collate: { batchable: isBatchable(session.inputs, session.outputs), paddable: isPaddable(session.inputs), lengthBuckets: b.lengthBuckets },
        run: (feeds) => session.run(feeds),
        onBatch: this.hooks.onBatch,
        onError: this.hooks.onError,
      });
      return { value: batcher, dispose: () => batcher.close() };
    });
  }

  private submitOptions(options: RequestOptions): SubmitOptions {
    const deadlineMs = options.deadlineMs ?? this.config.defaultDeadlineMs;
    if (!Number.isFinite(deadlineMs) || deadlineMs <= 0) throw inferqlError('BAD_INPUT', 'deadlineMs must be a positive number.');
    return { priority: options.priority ?? 0, deadlineAt: Date.now() + deadlineMs, signal: options.signal };
  }

  infer(modelName: string, inputs: readonly TensorPayload[], options: RequestOptions = {}): Promise<InferResult> {
    return this.observe(modelName, () => this.runInfer(modelName, inputs, options));
  }

  private async runInfer(modelName: string, inputs: readonly TensorPayload[], options: RequestOptions): Promise<InferResult> {
    const instance = this.registry.ready(modelName);
    const feeds = validateInputs(instance.session.inputs, inputs, this.config.maxTensorElements);
    const { outputs, metrics } = await this.batcher(instance).submit(feeds, this.submitOptions(options));
    return { outputs: Object.entries(outputs).map(([name, tensor]) => ({ name, tensor })), metrics };
  }

  /** Validates an infer request without running it (jobs check before they store). */
  checkInfer(modelName: string, inputs: readonly TensorPayload[]): void {
    const instance = this.registry.ready(modelName);
    validateInputs(instance.session.inputs, inputs, this.config.maxTensorElements);
  }

  /** Validates a classify request without running it. */
  checkClassify(modelName: string, inputs: readonly ClassifyInput[], topK: number | null | undefined): void {
    this.prepareClassify(modelName, inputs, topK);
  }

  classify(modelName: string, inputs: readonly ClassifyInput[], topK: number | null | undefined, options: RequestOptions = {}): Promise<Classification[]> {
    return this.observe(modelName, () => this.runClassify(modelName, inputs, topK, options));
  }

  private async runClassify(modelName: string, inputs: readonly ClassifyInput[], topK: number | null | undefined, options: RequestOptions): Promise<Classification[]> {
    const { instance, feeds } = this.prepareClassify(modelName, inputs, topK);
    const batcher = this.batcher(instance);
    const submit = this.submitOptions(options);
    const results = await Promise.all(feeds.map((f) => batcher.submit(f, submit)));
    return results.map(({ outputs, metrics }) => ({ labels: rank(outputs[instance.session.outputs[0]!.name]!, instance.manifest.labels, topK), metrics }));
  }

  private prepareClassify(modelName: string, inputs: readonly ClassifyInput[], topK: number | null | undefined): { instance: ModelInstance; feeds: Feeds[] } {
    const instance = this.registry.ready(modelName);
    const { manifest } = instance;
    if (manifest.task !== 'CLASSIFICATION') {
      throw inferqlError('MODEL_TASK_MISMATCH', `Model "${modelName}" is a ${manifest.task} model; classify needs a CLASSIFICATION model.`, { model: modelName });
    }
    if (inputs.length === 0) throw inferqlError('BAD_INPUT', 'classify needs at least one input.');
    if (topK !== null && topK !== undefined && (!Number.isInteger(topK) || topK < 1)) throw inferqlError('BAD_INPUT', 'topK must be a positive integer.');
    return { instance, feeds: inputs.map((input, i) => this.classifierFeeds(instance, input, i)) };
  }

  private classifierFeeds(instance: ModelInstance, input: ClassifyInput, index: number): Feeds {
    const { session, tokenizer, manifest } = instance;
    if (input.text !== undefined) {
      if (!tokenizer) throw inferqlError('BAD_INPUT', `Model "${manifest.name}" takes values, not text (it has no tokenizer).`, { index });
      const ids = tokenizer.encode(input.text).slice(0, manifest.maxTextLength);
      if (ids.length === 0) throw inferqlError('BAD_INPUT', `Input ${index}: text encodes to no tokens.`, { index });
      const feeds: Feeds = {};
      for (const spec of session.inputs) {
        const values = spec.name === 'input_ids' ? ids : spec.name === 'attention_mask' ? ids.map(() => 1) : ids.map(() => 0);
        feeds[spec.name] = new ort.Tensor('int64', BigInt64Array.from(values, BigInt), [1, ids.length]);
      }
      checkBatchAxis(session.inputs, feeds);
      return feeds;
    }
    const spec = session.inputs[0]!;
    if (session.inputs.length !== 1 || spec.datatype !== 'FP32' || spec.shape.length !== 2) {
      throw inferqlError('BAD_INPUT', `Model "${manifest.name}" does not take a single feature vector; use infer.`, { index });
    }
    const values = input.values!;
    checkShape(spec, [1, values.length]);
    return validateInputs(session.inputs, [{ name: spec.name, datatype: 'FP32', shape: [1, values.length], data: values }], this.config.maxTensorElements);
  }
}

/** Softmax over one row of logits, labels sorted by score, the first `topK`. */
export function rank(logits: ort.Tensor, labels: readonly string[] | null, topK: number | null | undefined): LabelScore[] {
  const row = Array.from(logits.data as Float32Array);
  const max = Math.max(...row);
  const exps = row.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  const scored = exps.map((e, i) => ({ label: labels?.[i] ?? String(i), score: e / sum }));
  scored.sort((a, b) => b.score - a.score);
  return topK ? scored.slice(0, topK) : scored;
}
