import ort from 'onnxruntime-node';
import type { GenerationResult } from '../generation/types.js';
import type { Classification, InferResult } from '../inference/service.js';
import { DATATYPE_INFO, typedArrayFor } from '../runtime/dtypes.js';
import { datatypeOf, elementCount, tensorToBase64 } from '../runtime/tensor-codec.js';
import type { StoredResult, StoredTensor } from './types.js';

/**
 * Results as stored (JSON) and as the schema reads them: the same shapes the
 * synchronous mutations return, so a job's result gives the same GraphQL
 * output. Tensors keep their raw bytes, so they read back byte for byte.
 */

/** What the ClassifyResult type shows: the list that `classify` returns. */
export interface ClassifyResult {
  classifications: Classification[];
}

export type JobResultValue = InferResult | ClassifyResult | GenerationResult;

export function storeInfer(result: InferResult): StoredResult {
  const outputs: StoredTensor[] = result.outputs.map(({ name, tensor }) => ({ name, datatype: datatypeOf(tensor), shape: [...tensor.dims], base64: tensorToBase64(tensor) }));
  return { kind: 'INFER', outputs, metrics: result.metrics };
}

export function storeClassify(classifications: readonly Classification[]): StoredResult {
  return { kind: 'CLASSIFY', classifications: classifications.map((c) => ({ labels: c.labels, metrics: c.metrics })) };
}

export function storeGeneration(generation: GenerationResult): StoredResult {
  return { kind: 'GENERATE', generation };
}

/** An onnxruntime tensor over stored bytes (no value checks: outputs may hold NaN or Inf). */
export function tensorFromStored(stored: StoredTensor): ort.Tensor {
  const info = DATATYPE_INFO[stored.datatype];
  const bytes = Buffer.from(stored.base64, 'base64');
  const count = elementCount(stored.shape);
  if (bytes.length !== count * info.bytes) throw new Error(`stored tensor "${stored.name}" has ${bytes.length} bytes for ${count} ${stored.datatype}`);
  const values = typedArrayFor(stored.datatype, count) as Uint8Array;
  new Uint8Array(values.buffer, values.byteOffset, values.byteLength).set(bytes);
  return new ort.Tensor(info.ort as 'float32', values as unknown as Float32Array, stored.shape);
}

export function readResult(stored: StoredResult): JobResultValue {
  switch (stored.kind) {
    case 'INFER':
      return { outputs: stored.outputs.map((t) => ({ name: t.name, tensor: tensorFromStored(t) })), metrics: stored.metrics };
    case 'CLASSIFY':
      return { classifications: stored.classifications };
    case 'GENERATE':
      return stored.generation;
  }
}
