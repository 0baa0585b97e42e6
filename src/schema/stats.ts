import type { ModelStats, StatsSample, ThroughputPoint } from '../stats.js';
import { builder } from './builder.js';
import { JobRef } from './jobs.js';
import { ModelStatusEnum, ModelTaskEnum } from './models.js';

export const ModelStatsRef = builder.objectRef<ModelStats>('ModelStats').implement({
  description: "One model's load over the last sampling interval.",
  fields: (t) => ({
    name: t.exposeString('name'),
    status: t.field({ type: ModelStatusEnum, resolve: (m) => m.status }),
    task: t.field({ type: ModelTaskEnum, nullable: true, resolve: (m) => m.task }),
    queueDepth: t.exposeInt('queueDepth', { description: 'Requests waiting in the batcher plus generations waiting for a decode slot.' }),
    running: t.exposeInt('running', { description: 'Sequences in the decode batch now.' }),
    batchSize: t.exposeFloat('batchSize', {
      nullable: true,
      description: 'Average batch over the interval: requests per session.run, or tokens per decode step. Null when nothing ran.',
    }),
    batches: t.exposeInt('batches', { description: 'session.run calls, or decode steps, in the interval.' }),
    requestsPerSecond: t.exposeFloat('requestsPerSecond', { description: 'Finished infer and classify requests per second.' }),
    tokensPerSecond: t.exposeFloat('tokensPerSecond', { description: 'Generated tokens per second.' }),
    tokensTotal: t.exposeInt('tokensTotal', { description: 'Tokens generated since the model loaded.' }),
  }),
});

export const ThroughputPointRef = builder.objectRef<ThroughputPoint>('ThroughputPoint').implement({
  fields: (t) => ({
    at: t.field({ type: 'DateTime', resolve: (p) => p.at }),
    tokensPerSecond: t.exposeFloat('tokensPerSecond'),
    requestsPerSecond: t.exposeFloat('requestsPerSecond'),
  }),
});

export const ServerStatsRef = builder.objectRef<StatsSample>('ServerStats').implement({
  description: 'What this server process is doing, sampled every STATS_INTERVAL_MS.',
  fields: (t) => ({
    at: t.field({ type: 'DateTime', resolve: (s) => s.at }),
    intervalMs: t.exposeInt('intervalMs'),
    uptimeSeconds: t.exposeFloat('uptimeSeconds'),
    tokensPerSecond: t.exposeFloat('tokensPerSecond', { description: 'Generated tokens per second, all models.' }),
    requestsPerSecond: t.exposeFloat('requestsPerSecond', { description: 'Finished infer and classify requests per second, all models.' }),
    openSubscriptions: t.exposeInt('openSubscriptions'),
    models: t.field({ type: [ModelStatsRef], resolve: (s) => s.models }),
    throughput: t.field({
      type: [ThroughputPointRef],
      description: 'Throughput of the last `last` intervals, oldest first (about five minutes are kept).',
      args: { last: t.arg.int({ defaultValue: 300 }) },
      resolve: (_s, args, ctx) => ctx.services.stats.history(Math.min(Math.max(args.last ?? 300, 0), 10_000)),
    }),
    recentJobs: t.field({
      type: [JobRef],
      description: "The newest jobs (the caller's own unless it holds the admin scope); empty without the jobs scope.",
      args: { first: t.arg.int({ defaultValue: 10 }) },
      resolve: async (_s, args, ctx) => {
        if (!ctx.auth.scopes.has('jobs')) return [];
        const viewer = ctx.auth.enabled && !ctx.auth.scopes.has('admin') ? ctx.auth.keyId : null;
        const page = await ctx.services.jobs.list({ first: Math.min(Math.max(args.first ?? 10, 0), 100) }, viewer);
        return page.edges.map((e) => e.job);
      },
    }),
  }),
});

builder.queryField('serverStats', (t) =>
  t.field({
    type: ServerStatsRef,
    description: 'The latest sample of what this server process is doing.',
    resolve: (_root, _args, ctx) => ctx.services.stats.latest(),
  }),
);

builder.subscriptionField('serverStats', (t) =>
  t.field({
    type: ServerStatsRef,
    description: 'The latest sample at once, then one every STATS_INTERVAL_MS (a slow client gets the newest, never a backlog).',
    subscribe: (_root, _args, ctx) => ctx.services.stats.watch(ctx.signal),
    resolve: (sample) => sample,
  }),
);
