import { DATATYPES } from '../runtime/dtypes.js';
import type { TensorSpec } from '../runtime/session.js';
import { datatypeOf, type NamedTensor, tensorToBase64, tensorToNumbers } from '../runtime/tensor-codec.js';
import { builder } from './builder.js';

export const DatatypeEnum = builder.enumType('Datatype', {
  description: 'Tensor element types, named as in the Open Inference Protocol (KServe v2).',
  values: DATATYPES,
});

export const TensorSpecRef = builder.objectRef<TensorSpec>('TensorSpec').implement({
  description: 'One input or output of a model.',
  fields: (t) => ({
    name: t.exposeString('name'),
    datatype: t.field({ type: DatatypeEnum, resolve: (s) => s.datatype }),
    shape: t.field({
      type: ['Int'],
      nullable: { list: false, items: true },
      description: 'Dimensions; null marks a dynamic one.',
      resolve: (s) => s.shape,
    }),
    dimNames: t.field({
      type: ['String'],
      nullable: { list: false, items: true },
      description: 'Symbolic names of the dynamic dimensions (batch_size, sequence_length…), null for static ones.',
      resolve: (s) => s.dimNames,
    }),
  }),
});

export const TensorInput = builder.inputType('TensorInput', {
  description: 'A named tensor: flat row-major `data`, or `base64` of its little-endian bytes (exactly one).',
  fields: (t) => ({
    name: t.string({ required: true }),
    datatype: t.field({ type: DatatypeEnum, required: true }),
    shape: t.intList({ required: true }),
    data: t.floatList({ required: false }),
    base64: t.string({ required: false }),
  }),
});

export const TensorRef = builder.objectRef<NamedTensor>('Tensor').implement({
  description: 'A named output tensor. Select `data` for numbers or `base64` for little-endian bytes.',
  fields: (t) => ({
    name: t.exposeString('name'),
    datatype: t.field({ type: DatatypeEnum, resolve: (o) => datatypeOf(o.tensor) }),
    shape: t.intList({ resolve: (o) => [...o.tensor.dims] }),
    data: t.floatList({ description: 'Flat row-major values (64-bit integers beyond 2^53 lose precision).', resolve: (o) => tensorToNumbers(o.tensor) }),
    base64: t.string({ description: 'The raw little-endian bytes, base64-encoded.', resolve: (o) => tensorToBase64(o.tensor) }),
  }),
});
