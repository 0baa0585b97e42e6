import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { groupRequests, split, stack } from '../../src/inference/collate.js';
import type { TensorSpec } from '../../src/runtime/session.js';

const ids = (values: number[]) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), [1, values.length]);
const textInputs: TensorSpec[] = [
  { name: 'input_ids', datatype: 'INT64', shape: [null, null], dimNames: ['batch_size', 'sequence_length'] },
  { name: 'attention_mask', datatype: 'INT64', shape: [null, null], dimNames: ['batch_size', 'sequence_length'] },
];
const textOutputs: TensorSpec[] = [
  { name: 'hidden', datatype: 'FP32', shape: [null, null, 2], dimNames: ['batch_size', 'sequence_length', null] },
  { name: 'logits', datatype: 'FP32', shape: [null, 3], dimNames: ['batch_size', null] },
];

describe('collate', () => {
  it('pads ragged sequences to the longest and cuts the padding off the outputs', () => {
    const requests = [
      { input_ids: ids([5, 6, 7]), attention_mask: ids([1, 1, 1]) },
      { input_ids: ids([8]), attention_mask: ids([1]) },
    ];
    const [group] = groupRequests(requests, textInputs, { batchable: true, paddable: true });
    expect(group).toEqual([0, 1]);
    const collated = stack(requests, group!, textInputs);
    expect(collated.feeds.input_ids!.dims).toEqual([2, 3]);
    expect(Array.from(collated.feeds.input_ids!.data as BigInt64Array, Number)).toEqual([5, 6, 7, 8, 0, 0]);
    expect(Array.from(collated.feeds.attention_mask!.data as BigInt64Array, Number)).toEqual([1, 1, 1, 1, 0, 0]);

    const hidden = new ort.Tensor('float32', Float32Array.from({ length: 12 }, (_, i) => i), [2, 3, 2]);
    const logits = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    const [a, b] = split({ hidden, logits }, collated, textOutputs);
    expect(a!.hidden!.dims).toEqual([1, 3, 2]);
    expect(Array.from(a!.hidden!.data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(b!.hidden!.dims).toEqual([1, 1, 2]);
    expect(Array.from(b!.hidden!.data as Float32Array)).toEqual([6, 7]);
    expect(Array.from(b!.logits!.data as Float32Array)).toEqual([4, 5, 6]);
  });

  it('keeps unpaddable shapes apart and honours length buckets', () => {
    const requests = [
      { input_ids: ids([1, 2]), attention_mask: ids([1, 1]) },
      { input_ids: ids([1, 2, 3, 4, 5]), attention_mask: ids([1, 1, 1, 1, 1]) },
      { input_ids: ids([3, 4]), attention_mask: ids([1, 1]) },
    ];
    expect(groupRequests(requests, textInputs, { batchable: true, paddable: false })).toEqual([[0, 2], [1]]);
    expect(groupRequests(requests, textInputs, { batchable: true, paddable: true, lengthBuckets: [4] })).toEqual([[0, 2], [1]]);
    expect(groupRequests(requests, textInputs, { batchable: true, paddable: true })).toEqual([[0, 1, 2]]);
    expect(groupRequests(requests, textInputs, { batchable: false, paddable: true })).toEqual([[0], [1], [2]]);
  });

  it('stacks requests that carry several rows each', () => {
    const spec: TensorSpec[] = [{ name: 'x', datatype: 'FP32', shape: [null, 2], dimNames: ['batch', null] }];
    const requests = [{ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]) }, { x: new ort.Tensor('float32', Float32Array.from([5, 6]), [1, 2]) }];
    const collated = stack(requests, [0, 1], spec);
    expect(collated.rows).toEqual([2, 1]);
    const parts = split({ x: collated.feeds.x! }, collated, spec);
    expect(Array.from(parts[0]!.x!.data as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(Array.from(parts[1]!.x!.data as Float32Array)).toEqual([5, 6]);
  });
});
