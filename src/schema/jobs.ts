import { decodeGlobalID } from '@pothos/plugin-relay';
import type { GenerationParams } from '../generation/types.js';
import type { ClassifyInput as ClassifyInputShape } from '../inference/service.js';
import { JOB_ID } from '../jobs/ids.js';
import { type ClassifyResult, type JobResultValue, readResult } from '../jobs/results.js';
import { type Job, JOB_KINDS, JOB_STATUSES, type JobEvent, type JobInput, type JobOutputChunk } from '../jobs/types.js';
import type { TensorPayload } from '../runtime/tensor-codec.js';
import { builder, type Context } from './builder.js';
import { GenerationParamsInput, GenerationRef } from './generation.js';
import { ClassificationRef, ClassifyInput, InferResultRef } from './inference.js';
import { TensorInput } from './tensors.js';

/** The API key a caller is limited to: with auth on, a key without the admin scope sees only its own jobs. */
function viewer(ctx: Context): string | null {
  return ctx.auth.enabled && !ctx.auth.scopes.has('admin') ? ctx.auth.keyId : null;
}

/** A job id as given: the Job's global id, or the bare job id. Anything else names no job. */
function jobId(id: string): string {
  if (JOB_ID.test(id)) return id;
  try {
    const decoded = decodeGlobalID(id);
    if (decoded.typename === 'Job' && JOB_ID.test(decoded.id)) return decoded.id;
  } catch {}
  return '';
}

const date = (ms: number | null) => (ms === null ? null : new Date(ms));

export const JobKindEnum = builder.enumType('JobKind', { values: JOB_KINDS });
export const JobStatusEnum = builder.enumType('JobStatus', {
  description: 'QUEUED → RUNNING → SUCCEEDED | FAILED; CANCELLED from QUEUED or RUNNING. A run cut off by a restart goes back to QUEUED.',
  values: JOB_STATUSES,
});
export const JobEventTypeEnum = builder.enumType('JobEventType', { values: ['STATUS', 'OUTPUT'] as const });

export const JobErrorRef = builder.objectRef<{ code: string; message: string }>('JobError').implement({
  description: 'Why a job failed or was cancelled. `code` is an error code of the catalog (INTERRUPTED: cut off by restarts too often).',
  fields: (t) => ({
    code: t.exposeString('code'),
    message: t.exposeString('message'),
  }),
});

export const JobProgressRef = builder.objectRef<NonNullable<Job['progress']>>('JobProgress').implement({
  fields: (t) => ({
    completed: t.exposeInt('completed', { description: 'Units done: tokens generated, inputs classified, 1 for a finished infer.' }),
    total: t.exposeInt('total', { nullable: true, description: 'Units expected, when known (null for a generation).' }),
    tokens: t.int({ nullable: true, description: 'Generation: tokens so far.', resolve: (p) => (p.text === null ? null : p.completed) }),
    text: t.exposeString('text', { nullable: true, description: 'Generation: the text so far.' }),
  }),
});

interface JobMetricsShape {
  queueMs: number | null;
  runMs: number | null;
  totalMs: number;
  tokensPerSecond: number | null;
}

export const JobMetricsRef = builder.objectRef<JobMetricsShape>('JobMetrics').implement({
  description: 'Times of a job, so far if it has not finished.',
  fields: (t) => ({
    queueMs: t.exposeFloat('queueMs', { nullable: true, description: 'Submission to the start of its (latest) run.' }),
    runMs: t.exposeFloat('runMs', { nullable: true, description: 'Start of its run to the end.' }),
    totalMs: t.exposeFloat('totalMs', { description: 'Submission to the end.' }),
    tokensPerSecond: t.exposeFloat('tokensPerSecond', { nullable: true, description: 'Generation: completion tokens per second.' }),
  }),
});

function jobMetrics(job: Job): JobMetricsShape {
  const end = job.finishedAt ?? Date.now();
  const runMs = job.startedAt === null ? null : end - job.startedAt;
  let tokensPerSecond: number | null = null;
  if (job.result?.kind === 'GENERATE') tokensPerSecond = job.result.generation.metrics.tokensPerSecond;
  else if (job.kind === 'GENERATE' && job.progress && runMs) tokensPerSecond = (job.progress.completed / runMs) * 1000;
  return { queueMs: job.startedAt === null ? null : job.startedAt - job.createdAt, runMs, totalMs: end - job.createdAt, tokensPerSecond };
}

export const ClassifyResultRef = builder.objectRef<ClassifyResult>('ClassifyResult').implement({
  description: 'What `classify` returns, as a job result: one Classification per input, in order.',
  fields: (t) => ({
    classifications: t.field({ type: [ClassificationRef], resolve: (r) => r.classifications }),
  }),
});

export const JobResultUnion = builder.unionType('JobResult', {
  description: 'The same type the matching synchronous mutation returns.',
  types: [InferResultRef, ClassifyResultRef, GenerationRef],
  resolveType: (value: JobResultValue) => ('outputs' in value ? 'InferResult' : 'classifications' in value ? 'ClassifyResult' : 'Generation'),
});

export const JobOutputChunkRef = builder.objectRef<JobOutputChunk>('JobOutputChunk').implement({
  description: 'A generated token and the text it adds.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'Token index within the run; a re-run (see the STATUS RUNNING event’s attempt) starts again at 0.' }),
    tokenId: t.exposeInt('tokenId', { nullable: true }),
    text: t.exposeString('text'),
  }),
});

export const JobEventRef = builder.objectRef<JobEvent>('JobEvent').implement({
  description: 'A numbered event of a job: a status change or an output chunk. `seq` counts 1, 2, 3… with no gaps.',
  fields: (t) => ({
    seq: t.exposeInt('seq'),
    at: t.field({ type: 'DateTime', resolve: (e) => new Date(e.at) }),
    type: t.field({ type: JobEventTypeEnum, resolve: (e) => e.type }),
    status: t.field({ type: JobStatusEnum, nullable: true, description: 'STATUS: the new status.', resolve: (e) => e.status }),
    attempt: t.exposeInt('attempt', { nullable: true, description: 'STATUS RUNNING: which run this is (1, 2, …).' }),
    error: t.field({ type: JobErrorRef, nullable: true, description: 'STATUS FAILED or CANCELLED: why.', resolve: (e) => e.error }),
    output: t.field({ type: JobOutputChunkRef, nullable: true, description: 'OUTPUT: the chunk.', resolve: (e) => e.output }),
  }),
});

export const JobRef = builder.node(builder.objectRef<Job>('Job'), {
  description: 'Work submitted with submitJob: it runs in the background, survives restarts, and keeps its result for the retention period.',
  id: { resolve: (job) => job.id },
  loadOne: (id, ctx) => (JOB_ID.test(id) ? ctx.services.jobs.get(id, viewer(ctx)) : null),
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'lastSeq' in value && 'attempts' in value,
  fields: (t) => ({
    model: t.exposeString('model'),
    kind: t.field({ type: JobKindEnum, resolve: (j) => j.kind }),
    status: t.field({ type: JobStatusEnum, resolve: (j) => j.status }),
    priority: t.exposeInt('priority'),
    deadlineMs: t.exposeInt('deadlineMs', { nullable: true }),
    createdAt: t.field({ type: 'DateTime', resolve: (j) => new Date(j.createdAt) }),
    startedAt: t.field({ type: 'DateTime', nullable: true, description: 'Start of the latest run.', resolve: (j) => date(j.startedAt) }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (j) => date(j.finishedAt) }),
    attempts: t.exposeInt('attempts', { description: 'Runs started (a restart re-runs a job that was running).' }),
    error: t.field({ type: JobErrorRef, nullable: true, resolve: (j) => j.error }),
    progress: t.field({ type: JobProgressRef, nullable: true, resolve: (j) => j.progress }),
    metrics: t.field({ type: JobMetricsRef, resolve: (j) => jobMetrics(j) }),
    result: t.field({ type: JobResultUnion, nullable: true, description: 'Set once SUCCEEDED.', resolve: (j) => (j.result ? readResult(j.result) : null) }),
    events: t.field({
      type: [JobEventRef],
      description: 'Stored events numbered above `after` (the jobEvents subscription streams them live).',
      args: { after: t.arg.int({ defaultValue: 0 }) },
      resolve: (j, args, ctx) => ctx.services.jobs.events(j.id, args.after ?? 0, viewer(ctx)),
    }),
  }),
});

const InferJobInput = builder.inputType('InferJobInput', {
  description: 'The arguments of `infer`.',
  fields: (t) => ({
    model: t.string({ required: true }),
    inputs: t.field({ type: [TensorInput], required: true }),
  }),
});

const ClassifyJobInput = builder.inputType('ClassifyJobInput', {
  description: 'The arguments of `classify`.',
  fields: (t) => ({
    model: t.string({ required: true }),
    inputs: t.field({ type: [ClassifyInput], required: true }),
    topK: t.int(),
  }),
});

const GenerateJobInput = builder.inputType('GenerateJobInput', {
  description: 'The arguments of `generate`.',
  fields: (t) => ({
    model: t.string({ required: true }),
    prompt: t.string({ required: true }),
    params: t.field({ type: GenerationParamsInput }),
  }),
});

const JobInputType = builder.inputType('JobInput', {
  isOneOf: true,
  description: 'What to run: exactly one of the three.',
  fields: (t) => ({
    infer: t.field({ type: InferJobInput }),
    classify: t.field({ type: ClassifyJobInput }),
    generate: t.field({ type: GenerateJobInput }),
  }),
});

builder.queryFields((t) => ({
  job: t.field({
    type: JobRef,
    nullable: true,
    authScopes: { jobs: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => {
      const id = jobId(String(args.id));
      return id ? ctx.services.jobs.get(id, viewer(ctx)) : null;
    },
  }),
  jobs: t.connection(
    {
      type: JobRef,
      description: 'Jobs, newest first. `first`/`after` pages towards older jobs, `last`/`before` towards newer ones.',
      authScopes: { jobs: true },
      args: {
        status: t.arg({ type: [JobStatusEnum], description: 'Only jobs in one of these statuses.' }),
        model: t.arg.string({ description: 'Only jobs of this model.' }),
      },
      resolve: async (_root, args, ctx) => {
        const page = await ctx.services.jobs.list(
          { first: args.first, after: args.after, last: args.last, before: args.before, status: args.status, model: args.model },
          viewer(ctx),
        );
        return {
          edges: page.edges.map((e) => ({ cursor: e.cursor, node: e.job })),
          pageInfo: {
            hasNextPage: page.hasNextPage,
            hasPreviousPage: page.hasPreviousPage,
            startCursor: page.edges[0]?.cursor ?? null,
            endCursor: page.edges.at(-1)?.cursor ?? null,
          },
          totalCount: page.totalCount,
        };
      },
    },
    {
      name: 'JobConnection',
      fields: (tc) => ({
        totalCount: tc.int({ description: 'Jobs that match the filters, on every page.', resolve: (conn) => (conn as unknown as { totalCount: number }).totalCount }),
      }),
    },
    { name: 'JobEdge' },
  ),
}));

function toJobInput(input: { infer?: unknown; classify?: unknown; generate?: unknown }): JobInput {
  if (input.infer) {
    const i = input.infer as { model: string; inputs: TensorPayload[] };
    return { kind: 'INFER', model: i.model, inputs: i.inputs };
  }
  if (input.classify) {
    const c = input.classify as { model: string; inputs: ClassifyInputShape[]; topK?: number | null };
    return { kind: 'CLASSIFY', model: c.model, inputs: c.inputs, topK: c.topK ?? null };
  }
  const g = input.generate as { model: string; prompt: string; params?: GenerationParams | null };
  return { kind: 'GENERATE', model: g.model, prompt: g.prompt, params: g.params ?? {} };
}

builder.mutationFields((t) => ({
  submitJob: t.field({
    type: JobRef,
    description: 'Queues work and returns the QUEUED job at once. Input is checked as the synchronous mutation checks it; bad input fails the same way and stores nothing.',
    authScopes: { jobs: true },
    args: {
      input: t.arg({ type: JobInputType, required: true }),
      priority: t.arg.int({ description: 'Higher runs first, in the job queue and in the model queue.' }),
      deadlineMs: t.arg.int({ description: 'Fail with TIMEOUT if not started within this many ms of submission.' }),
    },
    resolve: (_root, args, ctx) =>
      ctx.services.jobs.submit(toJobInput(args.input), { priority: args.priority, deadlineMs: args.deadlineMs, owner: ctx.auth.keyId }),
  }),
  cancelJob: t.field({
    type: JobRef,
    description: 'A queued job never runs; a running one stops (a generation within one decode step). A finished job is left as it is: JOB_FINISHED.',
    authScopes: { jobs: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.services.jobs.cancel(jobId(String(args.id)), viewer(ctx)),
  }),
}));

builder.subscriptionFields((t) => ({
  jobUpdated: t.field({
    type: JobRef,
    description: 'The job now, then at every status change and progress step; completes once it has finished.',
    authScopes: { jobs: true },
    args: { id: t.arg.id({ required: true }) },
    subscribe: async (_root, args, ctx) => {
      const id = jobId(String(args.id));
      await ctx.services.jobs.mustGet(id, viewer(ctx));
      return ctx.services.jobs.watch(id, viewer(ctx), ctx.signal);
    },
    resolve: (job) => job,
  }),
  jobEvents: t.field({
    type: JobEventRef,
    description: 'The stored events numbered above `after`, then new ones as they happen; completes after the finishing status. Reconnect with the last `seq` seen: nothing is missed or repeated.',
    authScopes: { jobs: true },
    args: { id: t.arg.id({ required: true }), after: t.arg.int({ defaultValue: 0 }) },
    subscribe: async (_root, args, ctx) => {
      const id = jobId(String(args.id));
      await ctx.services.jobs.mustGet(id, viewer(ctx));
      return ctx.services.jobs.watchEvents(id, args.after ?? 0, viewer(ctx), ctx.signal);
    },
    resolve: (event) => event,
  }),
}));
