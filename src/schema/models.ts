import type { ModelView } from '../models/directory.js';
import type { ModelEvent } from '../models/registry.js';
import { builder } from './builder.js';
import { TensorSpecRef } from './tensors.js';

export const ModelTaskEnum = builder.enumType('ModelTask', { values: ['TEXT_GENERATION', 'CLASSIFICATION', 'TENSOR'] as const });
export const ModelStatusEnum = builder.enumType('ModelStatus', { values: ['LOADING', 'READY', 'FAILED', 'UNLOADED'] as const });
export const ModelEventKindEnum = builder.enumType('ModelEventKind', {
  values: ['LOADING', 'READY', 'FAILED', 'UNLOADED', 'RELOADING', 'SWITCHED', 'DRAINED'] as const,
});

export const ModelRef = builder.node(builder.objectRef<ModelView>('Model'), {
  description: 'A model folder in the models directory (in distributed mode: of any live worker).',
  id: { resolve: (m) => m.name },
  loadOne: (name, ctx) => ctx.services.models.get(name),
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'status' in value && 'workers' in value,
  fields: (t) => ({
    name: t.exposeString('name'),
    version: t.exposeString('version', { nullable: true }),
    task: t.field({ type: ModelTaskEnum, nullable: true, resolve: (m) => m.task }),
    status: t.field({ type: ModelStatusEnum, resolve: (m) => m.status }),
    ready: t.boolean({ description: 'Whether the model takes requests now.', resolve: (m) => m.status === 'READY' }),
    error: t.string({ nullable: true, description: 'Why the model failed to load.', resolve: (m) => m.error }),
    loadedAt: t.field({ type: 'DateTime', nullable: true, resolve: (m) => (m.loadedAt === null ? null : new Date(m.loadedAt)) }),
    inputs: t.field({ type: [TensorSpecRef], resolve: (m) => m.inputs }),
    outputs: t.field({ type: [TensorSpecRef], resolve: (m) => m.outputs }),
    labels: t.stringList({ nullable: true, resolve: (m) => m.labels }),
    workers: t.stringList({ description: 'The processes serving it now (host:pid): this one, or in distributed mode each live worker where it is READY.', resolve: (m) => m.workers }),
  }),
});

export const ModelEventRef = builder.objectRef<ModelEvent>('ModelEvent').implement({
  description: 'A change in a model: loading, ready, failed, unloaded, and the steps of a reload.',
  fields: (t) => ({
    model: t.exposeString('model'),
    kind: t.field({ type: ModelEventKindEnum, resolve: (e) => e.kind }),
    status: t.field({ type: ModelStatusEnum, resolve: (e) => e.status }),
    message: t.string({ nullable: true, resolve: (e) => e.message }),
    at: t.field({ type: 'DateTime', resolve: (e) => e.at }),
  }),
});

builder.queryFields((t) => ({
  models: t.field({
    type: [ModelRef],
    description: 'Every model folder, loaded or not.',
    resolve: (_root, _args, ctx) => ctx.services.models.list(),
  }),
  model: t.field({
    type: ModelRef,
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.services.models.get(name),
  }),
}));

builder.mutationFields((t) => ({
  loadModel: t.field({
    type: ModelRef,
    description: 'Loads a model folder (a new folder is discovered by name).',
    authScopes: { admin: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.services.models.load(name),
  }),
  unloadModel: t.field({
    type: ModelRef,
    description: 'Drains in-flight requests, then frees the model.',
    authScopes: { admin: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.services.models.unload(name),
  }),
  reloadModel: t.field({
    type: ModelRef,
    description: 'Loads the folder again beside the serving version, switches to it, then drains and frees the old one.',
    authScopes: { admin: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, ctx) => ctx.services.models.reload(name),
  }),
}));

builder.subscriptionField('modelEvents', (t) =>
  t.field({
    type: ModelEventRef,
    description: 'Every model status change from now on.',
    subscribe: (_root, _args, ctx) => ctx.services.events.subscribe('modelEvents'),
    resolve: (event) => event,
  }),
);
