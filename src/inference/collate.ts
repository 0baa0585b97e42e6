import ort from 'onnxruntime-node';
import type { Feeds, Fetches, TensorSpec } from '../runtime/session.js';

/**
 * Collate and split: stacking requests along the batch axis, padding ragged
 * dynamic axes to the longest, and cutting the outputs back per request.
 */

export interface CollateOptions {
  /** The model has a dynamic batch axis on every input and output. */
  batchable: boolean;
  /** Ragged dynamic axes may be zero-padded (the model masks padding, e.g. with attention_mask). */
  paddable: boolean;
  /** Sequence-length bucket bounds; requests in different buckets run in different groups. */
  lengthBuckets?: readonly number[];
}

/**
 * Whether the model can take requests stacked along axis 0: every input and
 * output has a dynamic first axis, and where the axes are named, by one name.
 */
export function isBatchable(inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]): boolean {
  const all = [...inputs, ...outputs];
  if (!all.every((s) => s.shape.length > 0 && s.shape[0] === null)) return false;
  const names = new Set(all.map((s) => s.dimNames[0]).filter((n) => n));
  return names.size <= 1;
}

/** Padding ragged axes is only safe when the model is told which positions are real. */
export function isPaddable(inputs: readonly TensorSpec[]): boolean {
  return inputs.some((s) => s.name === 'attention_mask');
}

function longestDynamicAxis(feeds: Feeds, inputs: readonly TensorSpec[]): number {
  let longest = 0;
  for (const spec of inputs) {
    const dims = feeds[spec.name]!.dims;
    for (let k = 1; k < dims.length; k++) if (spec.shape[k] === null) longest = Math.max(longest, dims[k]!);
  }
  return longest;
}

function bucketOf(length: number, bounds: readonly number[]): number {
  const i = bounds.findIndex((b) => length <= b);
  return i < 0 ? bounds.length : i;
}

/** Splits requests into groups that can share one session.run, in arrival order. */
export function groupRequests(requests: readonly Feeds[], inputs: readonly TensorSpec[], options: CollateOptions): number[][] {
  if (!options.batchable) return requests.map((_, i) => [i]);
  const groups = new Map<string, number[]>();
  requests.forEach((feeds, i) => {
    const parts = inputs.map((spec) =>
      feeds[spec.name]!.dims
        .slice(1)
        .map((d, k) => (options.paddable && spec.shape[k + 1] === null ? '*' : String(d)))
        .join('x'),
    );
    if (options.paddable && options.lengthBuckets?.length) parts.push(`b${bucketOf(longestDynamicAxis(feeds, inputs), options.lengthBuckets)}`);
    const key = parts.join('|');
    const group = groups.get(key);
    if (group) group.push(i);
    else groups.set(key, [i]);
  });
  return [...groups.values()];
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let k = shape.length - 2; k >= 0; k--) s[k] = s[k + 1]! * shape[k + 1]!;
  return s;
}

type AnyArray = ort.Tensor.DataType & { length: number; set(a: ArrayLike<unknown>, offset?: number): void; subarray(a: number, b: number): AnyArray };

/**
 * Copies the box shared by `src` (shape `from`) and a zero-filled array of
 * shape `to`, at `dstOffset` in `dst`: pads when `to` is larger, crops when smaller.
 */
function copyBox(src: AnyArray, from: readonly number[], dst: AnyArray, to: readonly number[], dstOffset: number): void {
  const rank = from.length;
  if (rank === 0) {
    dst.set(src.subarray(0, 1), dstOffset);
    return;
  }
  const box = from.map((d, k) => Math.min(d, to[k]!));
  const sFrom = strides(from);
  const sTo = strides(to);
  const inner = box[rank - 1]!;
  const walk = (axis: number, srcAt: number, dstAt: number): void => {
    if (axis === rank - 1) {
      dst.set(src.subarray(srcAt, srcAt + inner), dstAt);
      return;
    }
    for (let i = 0; i < box[axis]!; i++) walk(axis + 1, srcAt + i * sFrom[axis]!, dstAt + i * sTo[axis]!);
  };
  walk(0, 0, dstOffset);
}

function newLike(data: ort.Tensor.DataType, length: number): AnyArray {
  const Ctor = (data as unknown as { constructor: new (n: number) => AnyArray }).constructor;
  return new Ctor(length);
}

export interface Collated {
  feeds: Feeds;
  /** Rows each member contributed, in member order. */
  rows: number[];
  /** Each member's own size of every named dynamic axis, for cutting padding off outputs. */
  axisSizes: Map<string, number>[];
}

/** Stacks the members' inputs along axis 0, zero-padding dynamic axes to the group's largest. */
export function stack(requests: readonly Feeds[], members: readonly number[], inputs: readonly TensorSpec[]): Collated {
  const rows = members.map(() => 0);
  const axisSizes = members.map(() => new Map<string, number>());
  const feeds: Feeds = {};
  for (const spec of inputs) {
    const parts = members.map((m) => requests[m]![spec.name]!);
    const target = [...parts[0]!.dims];
    for (const t of parts) t.dims.forEach((d, k) => (target[k] = k === 0 ? target[k]! : Math.max(target[k]!, d)));
    target[0] = parts.reduce((n, t) => n + t.dims[0]!, 0);
    members.forEach((_, j) => {
      parts[j]!.dims.forEach((d, k) => {
        const name = spec.dimNames[k];
        if (k > 0 && name) axisSizes[j]!.set(name, d);
      });
      rows[j] = parts[j]!.dims[0]!;
    });
    if (parts.length === 1) {
      feeds[spec.name] = parts[0]!;
      continue;
    }
    const rowSize = target.slice(1).reduce((n, d) => n * d, 1);
    const out = newLike(parts[0]!.data, target[0]! * rowSize);
    let row = 0;
    for (const t of parts) {
      const shape = [t.dims[0]!, ...target.slice(1)];
      copyBox(t.data as AnyArray, t.dims, out, shape, row * rowSize);
      row += t.dims[0]!;
    }
    feeds[spec.name] = new ort.Tensor(parts[0]!.type as 'float32', out as unknown as Float32Array, target);
  }
  return { feeds, rows, axisSizes };
}

/** Cuts a batch's outputs back into one set per member, dropping padded positions. */
export function split(fetches: Fetches, collated: Collated, outputs: readonly TensorSpec[]): Fetches[] {
  const results: Fetches[] = collated.rows.map(() => ({}));
  for (const spec of outputs) {
    const tensor = fetches[spec.name];
    if (!tensor) continue;
    const dims = tensor.dims;
    const rowSize = dims.slice(1).reduce((n, d) => n * d, 1);
    let row = 0;
    collated.rows.forEach((count, j) => {
      const own = dims.map((d, k) => {
        if (k === 0) return count;
        const name = spec.dimNames[k];
        return name ? (collated.axisSizes[j]!.get(name) ?? d) : d;
      });
      const data = tensor.data as AnyArray;
      const slice = data.subarray(row * rowSize, (row + count) * rowSize);
      let out: AnyArray;
      if (own.every((d, k) => k === 0 || d === dims[k])) {
        out = collated.rows.length === 1 ? slice : (slice.slice(0) as AnyArray);
      } else {
        out = newLike(tensor.data, own.reduce((n, d) => n * d, 1));
        copyBox(slice, [count, ...dims.slice(1)], out, own, 0);
      }
      results[j]![spec.name] = new ort.Tensor(tensor.type as 'float32', out as unknown as Float32Array, own);
      row += count;
    });
  }
  return results;
}
