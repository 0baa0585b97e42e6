import { inferqlError } from '../errors.js';
import type { Feeds, TensorSpec } from '../runtime/session.js';
import { decodeTensor, type TensorPayload } from '../runtime/tensor-codec.js';

const bad = (message: string, input?: string) => inferqlError('BAD_TENSOR', message, input ? { input } : {});

function shapeText(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => d ?? '?').join(', ')}]`;
}

/** Checks one tensor's shape against the model's: same rank, equal static dims, a batch of at least one row. */
export function checkShape(spec: TensorSpec, dims: readonly number[]): void {
  const ok = dims.length === spec.shape.length && spec.shape.every((d, k) => d === null || d === dims[k]);
  if (!ok) throw bad(`Input "${spec.name}": shape ${shapeText(dims)} does not match the model's ${shapeText(spec.shape)}`, spec.name);
  if (dims.some((d, k) => d === 0 && spec.shape[k] === null)) throw bad(`Input "${spec.name}": dynamic dimensions must not be 0`, spec.name);
}

/**
 * Turns API tensors into session feeds, or fails with BAD_TENSOR before any
 * of it reaches onnxruntime: unknown, missing or repeated inputs, wrong
 * datatype, wrong shape, element count, non-finite values, size limit, and
 * a batch axis that must agree across inputs.
 */
export function validateInputs(specs: readonly TensorSpec[], payloads: readonly TensorPayload[], maxElements: number): Feeds {
  const feeds: Feeds = {};
  for (const payload of payloads) {
    const spec = specs.find((s) => s.name === payload.name);
    if (!spec) throw bad(`Unknown input "${payload.name}"; the model takes ${specs.map((s) => s.name).join(', ')}`, payload.name);
    if (feeds[payload.name]) throw bad(`Input "${payload.name}" is given twice`, payload.name);
    if (payload.datatype !== spec.datatype) {
      throw bad(`Input "${payload.name}": datatype ${payload.datatype} does not match the model's ${spec.datatype}`, payload.name);
    }
    checkShape(spec, payload.shape);
    feeds[payload.name] = decodeTensor(payload, maxElements).tensor;
  }
  const missing = specs.filter((s) => !feeds[s.name]).map((s) => s.name);
  if (missing.length > 0) throw bad(`Missing input${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`, missing[0]);
  checkBatchAxis(specs, feeds);
  return feeds;
}

/** Inputs that share a named dynamic axis (batch_size, sequence_length) must agree on its size. */
export function checkBatchAxis(specs: readonly TensorSpec[], feeds: Feeds): void {
  const seen = new Map<string, { size: number; input: string }>();
  for (const spec of specs) {
    spec.dimNames.forEach((name, k) => {
      if (!name) return;
      const size = feeds[spec.name]!.dims[k]!;
      const first = seen.get(name);
      if (!first) seen.set(name, { size, input: spec.name });
      else if (first.size !== size) {
        throw bad(`Inputs "${first.input}" and "${spec.name}" disagree on ${name}: ${first.size} vs ${size}`, spec.name);
      }
    });
  }
}
