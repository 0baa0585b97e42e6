import type { GenerationMetrics, GenerationResult, GenerationUsage, TokenEvent } from '../generation/types.js';
import { builder } from './builder.js';

export const FinishReasonEnum = builder.enumType('FinishReason', {
  description: 'Why a generation ended: STOP (end-of-sequence token), LENGTH (maxTokens or the context), STOP_SEQUENCE, CANCELLED.',
  values: ['STOP', 'LENGTH', 'STOP_SEQUENCE', 'CANCELLED'] as const,
});

export const GenerationParamsInput = builder.inputType('GenerationParams', {
  description: "Sampling and stopping. Unset fields take the model's generation_config.json defaults.",
  fields: (t) => ({
    maxTokens: t.int({ description: 'Most tokens to generate.' }),
    temperature: t.float({ description: '0 is greedy.' }),
    topK: t.int({ description: 'Sample among the K best tokens; 0 turns it off.' }),
    topP: t.float({ description: 'Nucleus sampling, in (0, 1].' }),
    minP: t.float({ description: "Drop tokens below minP × the best token's probability, in [0, 1)." }),
    repetitionPenalty: t.float({ description: '> 0; 1 turns it off.' }),
    presencePenalty: t.float({ description: 'In [-2, 2].' }),
    frequencyPenalty: t.float({ description: 'In [-2, 2].' }),
    seed: t.int({ description: 'Same seed, same text.' }),
    stop: t.stringList({ description: 'Stop sequences; the text ends before them.' }),
  }),
});

export const GenerationUsageRef = builder.objectRef<GenerationUsage>('GenerationUsage').implement({
  fields: (t) => ({
    promptTokens: t.exposeInt('promptTokens'),
    completionTokens: t.exposeInt('completionTokens'),
    totalTokens: t.exposeInt('totalTokens'),
  }),
});

export const GenerationMetricsRef = builder.objectRef<GenerationMetrics>('GenerationMetrics').implement({
  fields: (t) => ({
    queueMs: t.exposeFloat('queueMs', { description: 'Waiting for a slot in the batch.' }),
    ttftMs: t.exposeFloat('ttftMs', { description: 'Time to first token.' }),
    tokensPerSecond: t.exposeFloat('tokensPerSecond'),
    totalMs: t.exposeFloat('totalMs'),
  }),
});

export const GenerationEventRef = builder.objectRef<TokenEvent>('GenerationEvent').implement({
  description: 'One generated token. The last event also carries finishReason, usage and metrics.',
  fields: (t) => ({
    index: t.exposeInt('index'),
    tokenId: t.exposeInt('tokenId', { nullable: true, description: 'Null only on a closing CANCELLED event that carries no token.' }),
    text: t.exposeString('text', { description: 'Text this token adds (empty while a character or a possible stop sequence is incomplete).' }),
    finishReason: t.field({ type: FinishReasonEnum, nullable: true, resolve: (e) => e.finishReason }),
    usage: t.field({ type: GenerationUsageRef, nullable: true, resolve: (e) => e.usage }),
    metrics: t.field({ type: GenerationMetricsRef, nullable: true, resolve: (e) => e.metrics }),
  }),
});

export const GenerationRef = builder.objectRef<GenerationResult>('Generation').implement({
  fields: (t) => ({
    text: t.exposeString('text'),
    tokenIds: t.exposeIntList('tokenIds'),
    finishReason: t.field({ type: FinishReasonEnum, resolve: (g) => g.finishReason }),
    usage: t.field({ type: GenerationUsageRef, resolve: (g) => g.usage }),
    metrics: t.field({ type: GenerationMetricsRef, resolve: (g) => g.metrics }),
  }),
});

builder.mutationField('generate', (t) =>
  t.field({
    type: GenerationRef,
    description: 'Generates a whole completion. Use the subscription of the same name to stream it.',
    authScopes: { infer: true },
    args: {
      model: t.arg.string({ required: true }),
      prompt: t.arg.string({ required: true }),
      params: t.arg({ type: GenerationParamsInput }),
      priority: t.arg.int(),
      deadlineMs: t.arg.int({ description: 'Fail with TIMEOUT if not started within this many ms.' }),
    },
    resolve: (_root, args, ctx) =>
      ctx.services.calls.generate(args.model, args.prompt, args.params, {
        signal: ctx.signal,
        priority: args.priority ?? undefined,
        deadlineMs: args.deadlineMs ?? undefined,
      }),
  }),
);

builder.subscriptionField('generate', (t) =>
  t.field({
    type: GenerationEventRef,
    description: 'Streams a completion, one event per token. Completing the subscription cancels the generation.',
    authScopes: { infer: true },
    args: {
      model: t.arg.string({ required: true }),
      prompt: t.arg.string({ required: true }),
      params: t.arg({ type: GenerationParamsInput }),
      priority: t.arg.int(),
    },
    subscribe: (_root, args, ctx) =>
      ctx.services.calls.open(args.model, args.prompt, args.params, { signal: ctx.signal, priority: args.priority ?? undefined }),
    resolve: (event) => event,
  }),
);
