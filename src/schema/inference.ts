import type { BatchMetrics } from '../inference/batcher.js';
import type { Classification, ClassifyInput as ClassifyInputShape, InferResult, LabelScore } from '../inference/service.js';
import type { TensorPayload } from '../runtime/tensor-codec.js';
import { builder } from './builder.js';
import { TensorInput, TensorRef } from './tensors.js';

export const InferMetricsRef = builder.objectRef<BatchMetrics>('InferMetrics').implement({
  description: 'How one request was served.',
  fields: (t) => ({
    queueMs: t.exposeFloat('queueMs', { description: 'Time waiting for its batch to start.' }),
    computeMs: t.exposeFloat('computeMs', { description: 'Time of the session.run it was part of.' }),
    batchSize: t.exposeInt('batchSize', { description: 'Requests in that session.run.' }),
  }),
});

export const InferResultRef = builder.objectRef<InferResult>('InferResult').implement({
  fields: (t) => ({
    outputs: t.field({ type: [TensorRef], resolve: (r) => r.outputs }),
    metrics: t.field({ type: InferMetricsRef, resolve: (r) => r.metrics }),
  }),
});

export const LabelScoreRef = builder.objectRef<LabelScore>('LabelScore').implement({
  fields: (t) => ({
    label: t.exposeString('label'),
    score: t.exposeFloat('score', { description: 'Softmax probability.' }),
  }),
});

export const ClassificationRef = builder.objectRef<Classification>('Classification').implement({
  fields: (t) => ({
    labels: t.field({ type: [LabelScoreRef], description: 'Labels by descending score.', resolve: (c) => c.labels }),
    metrics: t.field({ type: InferMetricsRef, resolve: (c) => c.metrics }),
  }),
});

export const ClassifyInput = builder.inputType('ClassifyInput', {
  isOneOf: true,
  description: 'Text (for models with a tokenizer) or a feature vector.',
  fields: (t) => ({
    text: t.string(),
    values: t.floatList(),
  }),
});


builder.mutationFields((t) => ({
  infer: t.field({
    type: InferResultRef,
    description: 'Runs a model on named tensors; concurrent requests share batches.',
    authScopes: { infer: true },
    args: {
      model: t.arg.string({ required: true }),
      inputs: t.arg({ type: [TensorInput], required: true }),
      priority: t.arg.int({ description: 'Higher runs first within the model queue.' }),
      deadlineMs: t.arg.int({ description: 'Fail with TIMEOUT if not started within this many ms.' }),
    },
    resolve: (_root, args, ctx) =>
      ctx.services.calls.infer(args.model, args.inputs as TensorPayload[], {
        priority: args.priority ?? undefined,
        deadlineMs: args.deadlineMs ?? undefined,
        signal: ctx.signal,
      }),
  }),
  classify: t.field({
    type: [ClassificationRef],
    description: 'Classifies each input; one Classification per input, in order.',
    authScopes: { infer: true },
    args: {
      model: t.arg.string({ required: true }),
      inputs: t.arg({ type: [ClassifyInput], required: true }),
      topK: t.arg.int({ description: 'Keep only the best K labels.' }),
      priority: t.arg.int(),
      deadlineMs: t.arg.int(),
    },
    resolve: (_root, args, ctx) =>
      ctx.services.calls.classify(args.model, args.inputs as ClassifyInputShape[], args.topK, {
        priority: args.priority ?? undefined,
        deadlineMs: args.deadlineMs ?? undefined,
        signal: ctx.signal,
      }),
  }),
}));
