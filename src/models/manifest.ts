import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

export type ModelTask = 'TEXT_GENERATION' | 'CLASSIFICATION' | 'TENSOR';

/** Per-model batching settings from inferql.json; unset ones take the server defaults. */
export interface BatchingSettings {
  maxBatchSize?: number;
  maxQueueDelayMs?: number;
  preferredBatchSizes?: number[];
  maxQueueSize?: number;
  /** Sequence-length bucket bounds: requests in different buckets are not padded together. */
  lengthBuckets?: number[];
}

/** What a model folder says about itself (Hugging Face layout plus optional inferql.json). */
export interface ModelManifest {
  name: string;
  dir: string;
  onnxPath: string;
  task: ModelTask;
  version: string;
  labels: string[] | null;
  batching: BatchingSettings;
  /** Text input settings for classifiers with a tokenizer. */
  maxTextLength: number;
  tokenizerPath: string | null;
  tokenizerConfigPath: string | null;
  /** config.json (architecture sizes, token ids), when present. */
  config: Record<string, unknown> | null;
  /** generation_config.json (sampling defaults), when present. */
  generationConfig: Record<string, unknown> | null;
}

const TASKS: readonly ModelTask[] = ['TEXT_GENERATION', 'CLASSIFICATION', 'TENSOR'];

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  if (!existsSync(path)) return null;
  const text = await readFile(path, 'utf8');
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${basename(path)} is not valid: ${(error as Error).message}`);
  }
}

function positiveInts(value: unknown, field: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(`inferql.json: ${field} must be a list of positive integers`);
  }
  return value as number[];
}

function positiveInt(value: unknown, field: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || (value as number) < min) throw new Error(`inferql.json: ${field} must be an integer ≥ ${min}`);
  return value as number;
}

function readBatching(raw: unknown): BatchingSettings {
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== 'object') throw new Error('inferql.json: batching must be an object');
  const b = raw as Record<string, unknown>;
  return {
    maxBatchSize: positiveInt(b.maxBatchSize, 'batching.maxBatchSize'),
    maxQueueDelayMs: positiveInt(b.maxQueueDelayMs, 'batching.maxQueueDelayMs', 0),
    preferredBatchSizes: positiveInts(b.preferredBatchSizes, 'batching.preferredBatchSizes'),
    maxQueueSize: positiveInt(b.maxQueueSize, 'batching.maxQueueSize'),
    lengthBuckets: positiveInts(b.lengthBuckets, 'batching.lengthBuckets'),
  };
}

function labelsFrom(inferql: Record<string, unknown> | null, config: Record<string, unknown> | null): string[] | null {
  if (inferql?.labels !== undefined) {
    if (!Array.isArray(inferql.labels) || !inferql.labels.every((l) => typeof l === 'string')) {
      throw new Error('inferql.json: labels must be a list of strings');
    }
    return inferql.labels as string[];
  }
  const id2label = config?.id2label as Record<string, string> | undefined;
  if (id2label && typeof id2label === 'object') {
    return Object.entries(id2label)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([, label]) => String(label));
  }
  return null;
}

function guessTask(config: Record<string, unknown> | null, labels: string[] | null): ModelTask {
  const architectures = (config?.architectures as string[] | undefined) ?? [];
  if (architectures.some((a) => a.endsWith('ForCausalLM'))) return 'TEXT_GENERATION';
  if (labels) return 'CLASSIFICATION';
  return 'TENSOR';
}

/** Reads a model folder. Throws an Error whose message says what is wrong with the folder. */
export async function readManifest(dir: string): Promise<ModelManifest> {
  const name = basename(dir);
  const onnxPath = [join(dir, 'onnx', 'model.onnx'), join(dir, 'model.onnx')].find((p) => existsSync(p));
  if (!onnxPath) throw new Error('no onnx/model.onnx or model.onnx in the folder');
  const inferql = await readJson(join(dir, 'inferql.json'));
  const config = await readJson(join(dir, 'config.json'));
  const generationConfig = await readJson(join(dir, 'generation_config.json'));
  const labels = labelsFrom(inferql, config);
  const task = inferql?.task ?? guessTask(config, labels);
  if (!TASKS.includes(task as ModelTask)) throw new Error(`inferql.json: task must be one of ${TASKS.join(', ')}`);
  const text = (inferql?.text ?? {}) as Record<string, unknown>;
  const tokenizerPath = join(dir, 'tokenizer.json');
  const tokenizerConfigPath = join(dir, 'tokenizer_config.json');
  return {
    name,
    dir,
    onnxPath,
    task: task as ModelTask,
    version: String(inferql?.version ?? '1'),
    labels,
    batching: readBatching(inferql?.batching),
    maxTextLength: positiveInt(text.maxLength, 'text.maxLength') ?? 512,
    tokenizerPath: existsSync(tokenizerPath) ? tokenizerPath : null,
    tokenizerConfigPath: existsSync(tokenizerConfigPath) ? tokenizerConfigPath : null,
    config,
    generationConfig,
  };
}
