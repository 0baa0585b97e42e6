import ort from 'onnxruntime-node';
import { DATATYPE_INFO, typedArrayFor } from '../runtime/dtypes.js';
import type { Feeds } from '../runtime/session.js';
import type { ModelInstance } from './instance.js';

/**
 * Runs a fresh model once on zeros before it takes traffic, so the first
 * real request does not pay for onnxruntime's lazy initialisation. Dynamic
 * dimensions are 1, or 0 for a decoder's past. Returns false if the model
 * would not run on such an input (a warning, not a load failure: some models
 * need real values).
 */
export async function warmUp(instance: ModelInstance): Promise<boolean> {
  const feeds: Feeds = {};
  for (const spec of instance.session.inputs) {
    const dims = spec.shape.map((d, k) => d ?? (/past/.test(spec.dimNames[k] ?? '') ? 0 : 1));
    const count = dims.reduce((n, d) => n * d, 1);
    const data = typedArrayFor(spec.datatype, count);
    if (spec.name === 'attention_mask' && data instanceof BigInt64Array) data.fill(1n);
    feeds[spec.name] = new ort.Tensor(DATATYPE_INFO[spec.datatype].ort as 'float32', data as Float32Array, dims);
  }
  try {
    await instance.session.run(feeds);
    instance.session.runs--;
    return true;
  } catch {
    return false;
  }
}
