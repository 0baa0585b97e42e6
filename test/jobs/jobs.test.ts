import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir, SHIPPED_MODELS, type TestServer, sse, startServer, subscribeAll, withoutEos } from '../helpers/server.js';

/** A digit "3"-like 8×8 image (sklearn's 0–16 range). */
const PIXELS = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0];
const TENSOR = (pixels = PIXELS) => [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: pixels }];
const LONG = { temperature: 1, seed: 5, maxTokens: 400, repetitionPenalty: 1 };

const JOB_FIELDS = /* GraphQL */ `
  id model kind status priority deadlineMs createdAt startedAt finishedAt attempts
  error { code message }
  progress { completed total tokens text }
  metrics { queueMs runMs totalMs tokensPerSecond }
`;
const RESULT = /* GraphQL */ `
  result {
    __typename
    ... on InferResult { outputs { name datatype shape data base64 } metrics { batchSize computeMs } }
    ... on ClassifyResult { classifications { labels { label score } } }
    ... on Generation { text tokenIds finishReason usage { promptTokens completionTokens totalTokens } }
  }
`;
const SUBMIT = `mutation ($input: JobInput!, $priority: Int, $deadlineMs: Int) { submitJob(input: $input, priority: $priority, deadlineMs: $deadlineMs) { ${JOB_FIELDS} } }`;
const JOB = `query ($id: ID!) { job(id: $id) { ${JOB_FIELDS} ${RESULT} events { seq type status attempt error { code } output { index tokenId text } } } }`;
const CANCEL = `mutation ($id: ID!) { cancelJob(id: $id) { ${JOB_FIELDS} } }`;
const UPDATED = `subscription ($id: ID!) { jobUpdated(id: $id) { id status attempts progress { completed text } ${RESULT} } }`;
const EVENTS = `subscription ($id: ID!, $after: Int) { jobEvents(id: $id, after: $after) { seq type status attempt output { index tokenId text } } }`;
const LIST = `query ($first: Int, $after: String, $last: Int, $before: String, $status: [JobStatus!], $model: String) {
  jobs(first: $first, after: $after, last: $last, before: $before, status: $status, model: $model) {
    totalCount edges { cursor node { id status model } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

let server: TestServer;
let dir: string;

beforeAll(async () => {
  dir = modelsDir({
    digits: {},
    'fortune-lm': {},
    // Waits a minute for a batch to fill: a job sent here stays RUNNING until cancelled.
    'digits-slow': { from: join(SHIPPED_MODELS, 'digits'), inferql: { batching: { maxBatchSize: 64, maxQueueDelayMs: 60_000 } } },
    // Runs as soon as two requests are in: one from a job, one live.
    'digits-pair': { from: join(SHIPPED_MODELS, 'digits'), inferql: { batching: { maxBatchSize: 2, maxQueueDelayMs: 10_000 } } },
    // Room for one waiting request, held 400 ms while its batch fills.
    'digits-one': { from: join(SHIPPED_MODELS, 'digits'), inferql: { batching: { maxBatchSize: 64, maxQueueDelayMs: 400, maxQueueSize: 1 } } },
  });
  server = await startServer({ modelsDir: dir });
});

afterAll(async () => {
  await server?.stop();
});

async function submit(s: TestServer, input: unknown, extra: { priority?: number; deadlineMs?: number } = {}) {
  const res = await s.gql(SUBMIT, { input, ...extra });
  expect(res.errors).toBeUndefined();
  return res.data.submitJob;
}

/** Follows jobUpdated to the end; resolves with every state it streamed. */
async function finished(s: TestServer, id: string) {
  const { events, errors } = await subscribeAll(s.ws(), UPDATED, { id });
  expect(errors).toEqual([]);
  return events.map((e) => e.jobUpdated);
}

async function getJob(s: TestServer, id: string) {
  const res = await s.gql(JOB, { id });
  expect(res.errors).toBeUndefined();
  return res.data.job;
}

describe('life cycle and results', () => {
  it('an infer job: QUEUED at once, then RUNNING, then SUCCEEDED with the same bytes as the infer mutation', async () => {
    const job = await submit(server, { infer: { model: 'digits', inputs: TENSOR() } }, { priority: 2, deadlineMs: 60_000 });
    expect(job).toMatchObject({ model: 'digits', kind: 'INFER', status: 'QUEUED', priority: 2, deadlineMs: 60_000, attempts: 0, startedAt: null, finishedAt: null, error: null, progress: null });
    expect(job.metrics.queueMs).toBeNull();
    const states = await finished(server, job.id);
    expect(states.at(-1)).toMatchObject({ status: 'SUCCEEDED', attempts: 1, result: { __typename: 'InferResult' } });

    const done = await getJob(server, job.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 1, progress: { completed: 1, total: 1, tokens: null, text: null } });
    expect(Date.parse(done.startedAt)).toBeGreaterThanOrEqual(Date.parse(done.createdAt));
    expect(Date.parse(done.finishedAt)).toBeGreaterThanOrEqual(Date.parse(done.startedAt));
    expect(done.metrics.queueMs).toBeGreaterThanOrEqual(0);
    expect(done.metrics.runMs).toBeGreaterThanOrEqual(0);
    expect(done.events.map((e: any) => [e.seq, e.status, e.attempt])).toEqual([
      [1, 'QUEUED', null],
      [2, 'RUNNING', 1],
      [3, 'SUCCEEDED', null],
    ]);
    const sync = await server.gql(`mutation ($inputs: [TensorInput!]!) { infer(model: "digits", inputs: $inputs) { outputs { name datatype shape data base64 } } }`, { inputs: TENSOR() });
    expect(done.result.outputs).toEqual(sync.data.infer.outputs);
    expect(done.result.metrics.batchSize).toBeGreaterThanOrEqual(1);
  });

  it('a classify job gives a ClassifyResult: the list classify returns', async () => {
    const inputs = [{ values: PIXELS }, { values: PIXELS.map((v) => 16 - v) }];
    const job = await submit(server, { classify: { model: 'digits', inputs, topK: 3 } });
    await finished(server, job.id);
    const done = await getJob(server, job.id);
    expect(done).toMatchObject({ kind: 'CLASSIFY', status: 'SUCCEEDED', progress: { completed: 2, total: 2 }, result: { __typename: 'ClassifyResult' } });
    const sync = await server.gql(`mutation ($inputs: [ClassifyInput!]!) { classify(model: "digits", inputs: $inputs, topK: 3) { labels { label score } } }`, { inputs });
    expect(done.result.classifications).toEqual(sync.data.classify);
    expect(done.result.classifications[0].labels).toHaveLength(3);
  });

  it('a generate job gives a Generation equal to the generate mutation, with its tokens as numbered output events', async () => {
    const params = { temperature: 0.8, seed: 42, maxTokens: 16, repetitionPenalty: 1.1 };
    const job = await submit(server, { generate: { model: 'fortune-lm', prompt: 'A friend in need', params } });
    const states = await finished(server, job.id);
    // Progress steps stream too: token counts only grow.
    const counts = states.map((s) => s.progress?.completed ?? 0);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    const done = await getJob(server, job.id);
    const sync = await server.gql(`mutation ($params: GenerationParams) { generate(model: "fortune-lm", prompt: "A friend in need", params: $params) { text tokenIds finishReason usage { promptTokens completionTokens totalTokens } } }`, { params });
    const { __typename, ...generation } = done.result;
    expect(__typename).toBe('Generation');
    expect(generation).toEqual(sync.data.generate);
    const outputs = done.events.filter((e: any) => e.type === 'OUTPUT');
    expect(outputs.map((e: any) => e.output.tokenId)).toEqual(generation.tokenIds);
    expect(outputs.map((e: any) => e.output.index)).toEqual(generation.tokenIds.map((_: unknown, i: number) => i));
    expect(outputs.map((e: any) => e.output.text).join('')).toBe(generation.text);
    expect(done.progress).toMatchObject({ completed: generation.tokenIds.length, tokens: generation.tokenIds.length, text: generation.text });
    expect(done.metrics.tokensPerSecond).toBeGreaterThan(0);
    expect(done.events.map((e: any) => e.seq)).toEqual(done.events.map((_: unknown, i: number) => i + 1));
  });

  it('a sampled generation without a seed gets one at submission, so a re-run would repeat it', async () => {
    const job = await submit(server, { generate: { model: 'fortune-lm', prompt: 'Luck', params: { maxTokens: 3 } } });
    await finished(server, job.id);
    const done = await getJob(server, job.id);
    expect(done.status).toBe('SUCCEEDED');
  });

  it('node(id:) finds a job by its global id; job(id:) of an unknown id is null', async () => {
    const job = await submit(server, { infer: { model: 'digits', inputs: TENSOR() } });
    const res = await server.gql(`query ($id: ID!) { node(id: $id) { id ... on Job { kind model } } missing: job(id: "Sm9iOm5vcGU=") { id } bad: job(id: "???") { id } }`, { id: job.id });
    expect(res.errors).toBeUndefined();
    expect(res.data).toEqual({ node: { id: job.id, kind: 'INFER', model: 'digits' }, missing: null, bad: null });
    await finished(server, job.id);
  });
});

describe('bad input fails as the synchronous mutation does, and stores nothing', () => {
  const cases: [string, unknown, string][] = [
    ['unknown model', { infer: { model: 'nope', inputs: TENSOR() } }, 'MODEL_NOT_FOUND'],
    ['wrong shape', { infer: { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] } }, 'BAD_TENSOR'],
    ['classify on a generator', { classify: { model: 'fortune-lm', inputs: [{ text: 'hi' }] } }, 'MODEL_TASK_MISMATCH'],
    ['bad topK', { classify: { model: 'digits', inputs: [{ values: PIXELS }], topK: 0 } }, 'BAD_INPUT'],
    ['negative temperature', { generate: { model: 'fortune-lm', prompt: 'x', params: { temperature: -1 } } }, 'BAD_GENERATION_PARAMS'],
    ['too many tokens', { generate: { model: 'fortune-lm', prompt: 'x', params: { maxTokens: 100_000 } } }, 'BAD_GENERATION_PARAMS'],
  ];

  it.each(cases)('%s', async (_name, input, code) => {
    const before = (await server.gql(LIST, { first: 0 })).data.jobs.totalCount;
    const res = await server.gql(SUBMIT, { input });
    expect(res.errors?.[0]?.extensions?.code).toBe(code);
    expect((await server.gql(LIST, { first: 0 })).data.jobs.totalCount).toBe(before);
  });

  it('the same codes as the mutations themselves', async () => {
    const infer = await server.gql(`mutation { infer(model: "digits", inputs: [{name: "pixels", datatype: FP32, shape: [1, 3], data: [1, 2, 3]}]) { outputs { name } } }`);
    expect(infer.errors?.[0]?.extensions?.code).toBe('BAD_TENSOR');
    const gen = await server.gql(`mutation { generate(model: "fortune-lm", prompt: "x", params: {temperature: -1}) { text } }`);
    expect(gen.errors?.[0]?.extensions?.code).toBe('BAD_GENERATION_PARAMS');
  });

  it('a bad deadline, or two kinds at once, is refused', async () => {
    const deadline = await server.gql(SUBMIT, { input: { infer: { model: 'digits', inputs: TENSOR() } }, deadlineMs: 0 });
    expect(deadline.errors?.[0]?.extensions?.code).toBe('BAD_INPUT');
    const both = await server.gql(SUBMIT, { input: { infer: { model: 'digits', inputs: TENSOR() }, generate: { model: 'fortune-lm', prompt: 'x' } } });
    expect(both.errors?.length).toBeGreaterThan(0);
    expect(both.data ?? null).toBeNull();
  });
});

describe('cancel', () => {
  it('a running generation stops within one decode step; the job is CANCELLED and writes nothing after', async () => {
    const stats = () => server.app.services.generation.stats('fortune-lm')!;
    const job = await submit(server, { generate: { model: 'fortune-lm', prompt: 'Keep going:', params: LONG } });
    const client = server.ws();
    let cancelledBefore = 0;
    let cancelled: Promise<unknown> | null = null;
    const stream = new Promise<any[]>((resolve, reject) => {
      const seen: any[] = [];
      client.subscribe(
        { query: EVENTS, variables: { id: job.id } },
        {
          next: ({ data }) => {
            seen.push(data!.jobEvents);
            if (seen.filter((e) => e.type === 'OUTPUT').length === 3 && !cancelled) {
              // The resolver's own path, in process, so the engine's counters can be read at the moment of the cancel.
              cancelledBefore = stats().cancelled;
              cancelled = server.app.services.jobs.cancel(fromGlobal(job.id));
            }
          },
          error: reject,
          complete: () => resolve(seen),
        },
      );
    });
    const seen = await stream;
    await cancelled;
    while (stats().cancelled <= cancelledBefore || stats().live.length > 0) await new Promise((r) => setImmediate(r));
    // The engine's own count (its counters reach this thread late, so steps seen from here would overcount):
    // session runs that completed between the cancel and the sequence leaving the batch.
    expect(stats().maxCancelLagSteps).toBeLessThanOrEqual(1);
    expect(seen.at(-1)).toMatchObject({ type: 'STATUS', status: 'CANCELLED' });
    const done = await getJob(server, job.id);
    expect(done).toMatchObject({ status: 'CANCELLED', error: { code: 'CANCELLED' }, result: null });
    expect(done.events.at(-1)).toMatchObject({ status: 'CANCELLED' });
    expect(done.events.map((e: any) => e.seq)).toEqual(seen.map((e) => e.seq));
    expect(done.progress.completed).toBeLessThan(LONG.maxTokens);
  });

  it('cancelJob on a running generation answers CANCELLED at once', async () => {
    const job = await submit(server, { generate: { model: 'fortune-lm', prompt: 'Keep going:', params: { ...LONG, seed: 9 } } });
    const client = server.ws();
    await new Promise<void>((resolve) => {
      const stop = client.subscribe({ query: EVENTS, variables: { id: job.id } }, { next: ({ data }) => (data as any).jobEvents.type === 'OUTPUT' && (stop(), resolve()), error: () => {}, complete: () => {} });
    });
    const res = await server.gql(CANCEL, { id: job.id });
    expect(res.errors).toBeUndefined();
    expect(res.data.cancelJob).toMatchObject({ id: job.id, status: 'CANCELLED', error: { code: 'CANCELLED' } });
    const states = await finished(server, job.id);
    expect(states).toEqual([expect.objectContaining({ status: 'CANCELLED' })]);
  });

  it('a finished job is unchanged: JOB_FINISHED; an unknown one: JOB_NOT_FOUND', async () => {
    const job = await submit(server, { infer: { model: 'digits', inputs: TENSOR() } });
    await finished(server, job.id);
    const before = await getJob(server, job.id);
    const res = await server.gql(CANCEL, { id: job.id });
    expect(res.errors?.[0]?.extensions?.code).toBe('JOB_FINISHED');
    expect(await getJob(server, job.id)).toEqual(before);
    const missing = await server.gql(CANCEL, { id: 'Sm9iOm5vcGU=' });
    expect(missing.errors?.[0]?.extensions?.code).toBe('JOB_NOT_FOUND');
  });
});

describe('with one job at a time', () => {
  let one: TestServer;
  beforeAll(async () => {
    one = await startServer({ modelsDir: dir, jobConcurrency: 1 });
  });
  afterAll(async () => {
    await one?.stop();
  });

  it('a queued job never runs once cancelled; a running infer job stops; priority orders the queue; a missed deadline fails with TIMEOUT', async () => {
    // Holds the only slot: its batch waits a minute to fill.
    const blocker = await submit(one, { infer: { model: 'digits-slow', inputs: TENSOR() } });
    await new Promise<void>((resolve) => {
      const client = one.ws();
      client.subscribe({ query: UPDATED, variables: { id: blocker.id } }, { next: ({ data }) => (data as any).jobUpdated.status === 'RUNNING' && resolve(), error: () => {}, complete: () => {} });
    });
    const low = await submit(one, { infer: { model: 'digits', inputs: TENSOR() } });
    const high = await submit(one, { infer: { model: 'digits', inputs: TENSOR() } }, { priority: 10 });
    const queued = await submit(one, { infer: { model: 'digits', inputs: TENSOR() } }, { priority: 5 });
    const late = await submit(one, { infer: { model: 'digits', inputs: TENSOR() } }, { priority: 20, deadlineMs: 1 });

    const cancelQueued = await one.gql(CANCEL, { id: queued.id });
    expect(cancelQueued.data.cancelJob).toMatchObject({ status: 'CANCELLED', attempts: 0, startedAt: null, error: { code: 'CANCELLED' } });

    // Let the queue move: cancel the blocker while it waits in its batch.
    const cancelRunning = await one.gql(CANCEL, { id: blocker.id });
    expect(cancelRunning.data.cancelJob).toMatchObject({ status: 'CANCELLED', attempts: 1 });

    await finished(one, low.id);
    const [lowDone, highDone, queuedDone, lateDone] = await Promise.all([low, high, queued, late].map((j) => getJob(one, j.id)));
    expect(queuedDone).toMatchObject({ status: 'CANCELLED', attempts: 0, startedAt: null, result: null });
    expect(queuedDone.events.map((e: any) => e.status)).toEqual(['QUEUED', 'CANCELLED']);
    expect(lateDone).toMatchObject({ status: 'FAILED', error: { code: 'TIMEOUT' }, result: null });
    expect(highDone.status).toBe('SUCCEEDED');
    expect(Date.parse(highDone.startedAt)).toBeLessThanOrEqual(Date.parse(lowDone.startedAt));
    expect(lowDone.status).toBe('SUCCEEDED');
    const blockerDone = await getJob(one, blocker.id);
    expect(blockerDone).toMatchObject({ status: 'CANCELLED', result: null });
    expect(blockerDone.events.map((e: any) => e.status)).toEqual(['QUEUED', 'RUNNING', 'CANCELLED']);
    // Nothing of the blocker is left in its model's queue.
    expect(one.app.services.inference.queues().find((q) => q.name === 'digits-slow')?.queued ?? 0).toBe(0);
  });
});

describe('jobs share batches with live traffic', () => {
  it('a job and a live infer run in the same session.run', async () => {
    const job = await submit(server, { infer: { model: 'digits-pair', inputs: TENSOR() } });
    const live = await server.gql(`mutation ($inputs: [TensorInput!]!) { infer(model: "digits-pair", inputs: $inputs) { metrics { batchSize computeMs } } }`, { inputs: TENSOR() });
    await finished(server, job.id);
    const done = await getJob(server, job.id);
    expect(live.data.infer.metrics.batchSize).toBe(2);
    expect(done.result.metrics).toEqual(live.data.infer.metrics);
  });
});

describe('a full model queue', () => {
  it('does not fail a job: it goes back to our queue and runs once there is room', async () => {
    const live = server.gql(`mutation ($inputs: [TensorInput!]!) { infer(model: "digits-one", inputs: $inputs) { metrics { batchSize } } }`, { inputs: TENSOR() });
    // The live request is in the model's queue before the job is submitted: the job's first try finds it full.
    while ((server.app.services.inference.queues().find((q) => q.name === 'digits-one')?.queued ?? 0) < 1) await new Promise((r) => setImmediate(r));
    const job = await submit(server, { infer: { model: 'digits-one', inputs: TENSOR() } });
    await finished(server, job.id);
    expect((await live).data.infer.metrics.batchSize).toBe(1);
    const done = await getJob(server, job.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    expect(done.events.map((e: any) => e.status)).toEqual(['QUEUED', 'RUNNING', 'QUEUED', 'RUNNING', 'SUCCEEDED']);
  });
});

describe('jobEvents', () => {
  it('after a dropped connection, resuming from the last seq misses nothing and repeats nothing', async () => {
    const job = await submit(server, { generate: { model: 'fortune-lm', prompt: 'Once upon a time', params: { ...LONG, maxTokens: 300, seed: 11 } } });
    // First connection: read five events, then drop the socket.
    const first: any[] = [];
    const client = server.ws();
    let dropped = false;
    await new Promise<void>((resolve) => {
      client.subscribe(
        { query: EVENTS, variables: { id: job.id, after: 0 } },
        {
          next: ({ data }) => {
            if (dropped) return; // what arrives after the drop never reaches this client
            first.push((data as any).jobEvents);
            if (first.length === 5) {
              dropped = true;
              resolve();
            }
          },
          error: () => resolve(),
          complete: () => resolve(),
        },
      );
    });
    await client.dispose();
    const lastSeen = first.at(-1).seq;
    // Reconnect over SSE with the last seq seen.
    const second: any[] = [];
    for await (const message of sse(server.url, EVENTS, { id: job.id, after: lastSeen })) {
      expect(message.errors).toBeUndefined();
      second.push(message.data.jobEvents);
    }
    const all = [...first, ...second];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    expect(second[0].seq).toBe(lastSeen + 1);
    expect(all.at(-1)).toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
    const done = await getJob(server, job.id);
    expect(done.events).toEqual(all.map((e) => expect.objectContaining(e)));
    expect(all.filter((e) => e.type === 'OUTPUT').map((e) => e.output.text).join('')).toBe(done.result.text);
  });

  it('watchers that join while tokens stream in each get every event once, in order (replay, then live)', async () => {
    const jobs = server.app.services.jobs;
    const job = await jobs.submit({ kind: 'GENERATE', model: 'fortune-lm', prompt: 'Again and again', params: { ...LONG, maxTokens: 200, seed: 31 } });
    const collect = async (after: number) => {
      const seqs: number[] = [];
      for await (const event of jobs.watchEvents(job.id, after, null)) seqs.push(event.seq);
      return { after, seqs };
    };
    // The first watcher opens the others, one per event it sees, so each joins at a different point of the stream.
    const joined: Promise<{ after: number; seqs: number[] }>[] = [];
    for await (const event of jobs.watchEvents(job.id, 0, null)) {
      if (joined.length < 40) joined.push(collect(joined.length % 2 === 0 ? 0 : Math.max(0, event.seq - 3)));
    }
    const stored = (await jobs.events(job.id, 0)).map((e) => e.seq);
    expect(stored).toEqual(stored.map((_, i) => i + 1));
    for (const { after, seqs } of await Promise.all(joined)) expect(seqs).toEqual(stored.slice(after));
  });

  it('a finished job replays its stored events and completes; after the last seq, nothing', async () => {
    const job = await submit(server, { infer: { model: 'digits', inputs: TENSOR() } });
    await finished(server, job.id);
    const all = await subscribeAll(server.ws(), EVENTS, { id: job.id });
    expect(all.events.map((e) => e.jobEvents.status)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
    const tail = await subscribeAll(server.ws(), EVENTS, { id: job.id, after: 2 });
    expect(tail.events.map((e) => e.jobEvents.seq)).toEqual([3]);
    const missing = await subscribeAll(server.ws(), EVENTS, { id: 'Sm9iOm5vcGU=' });
    expect((missing.errors[0] as any)?.extensions?.code ?? (missing.errors[0] as any)?.[0]?.extensions?.code).toBe('JOB_NOT_FOUND');
  });
});

describe('jobs(...)', () => {
  let paged: TestServer;
  const ids: string[] = [];
  beforeAll(async () => {
    paged = await startServer({ modelsDir: dir });
    for (let i = 0; i < 13; i++) {
      const input = i % 4 === 0 ? { classify: { model: 'digits', inputs: [{ values: PIXELS }] } } : { infer: { model: i % 2 ? 'digits' : 'digits-pair', inputs: TENSOR() } };
      ids.push((await submit(paged, input)).id);
    }
    await Promise.all(ids.map((id) => finished(paged, id)));
  });
  afterAll(async () => {
    await paged?.stop();
  });

  it('pages newest first with first/after and back with last/before; totalCount on every page', async () => {
    const newestFirst = [...ids].reverse();
    const forward: string[] = [];
    let after: string | null = null;
    for (;;) {
      const res: any = await paged.gql(LIST, { first: 5, after });
      const { edges, pageInfo, totalCount } = res.data.jobs;
      expect(totalCount).toBe(13);
      forward.push(...edges.map((e: any) => e.node.id));
      expect(pageInfo.hasPreviousPage).toBe(after !== null);
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    expect(forward).toEqual(newestFirst);
    const backward: string[] = [];
    let before: string | null = null;
    for (;;) {
      const res: any = await paged.gql(LIST, { last: 4, before });
      const { edges, pageInfo } = res.data.jobs;
      backward.unshift(...edges.map((e: any) => e.node.id));
      expect(pageInfo.hasNextPage).toBe(before !== null);
      if (!pageInfo.hasPreviousPage) break;
      before = pageInfo.startCursor;
    }
    expect(backward).toEqual(newestFirst);
  });

  it('filters by status and model', async () => {
    const succeeded = await paged.gql(LIST, { first: 100, status: ['SUCCEEDED'] });
    expect(succeeded.data.jobs.totalCount).toBe(13);
    const none = await paged.gql(LIST, { first: 100, status: ['QUEUED', 'RUNNING', 'FAILED'] });
    expect(none.data.jobs).toMatchObject({ totalCount: 0, edges: [] });
    const pair = await paged.gql(LIST, { first: 2, model: 'digits-pair' });
    expect(pair.data.jobs.totalCount).toBe(3); // i = 2, 6, 10
    expect(pair.data.jobs.edges.every((e: any) => e.node.model === 'digits-pair')).toBe(true);
    expect(pair.data.jobs.pageInfo.hasNextPage).toBe(true);
    const bad = await paged.gql(LIST, { first: 1, after: 'not-a-cursor' });
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_INPUT');
  });

  it('finished jobs past the retention are pruned', async () => {
    const services = paged.app.services;
    expect(await services.jobs.prune(Date.now() + 8 * 86_400_000)).toBe(13);
    expect((await paged.gql(LIST, { first: 0 })).data.jobs.totalCount).toBe(0);
    expect((await paged.gql(JOB, { id: ids[0] })).data.job).toBeNull();
  });
});

describe('restart', () => {
  it('a stop that cuts a job off gives it back to the queue; the next start runs it again to the same result', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'inferql-restart-'));
    const params = { ...LONG, maxTokens: 200, seed: 21 };
    // A decoder without EOS: the generation surely runs past the third token when the stop comes.
    const endless = withoutEos(modelsDir({ 'fortune-lm': {} }));
    const first = await startServer({ modelsDir: endless, dataDir });
    const job = await submit(first, { generate: { model: 'fortune-lm', prompt: 'Over and over', params } });
    await new Promise<void>((resolve) => {
      let outputs = 0;
      first.ws().subscribe({ query: EVENTS, variables: { id: job.id } }, { next: ({ data }) => (data as any).jobEvents.type === 'OUTPUT' && ++outputs === 3 && resolve(), error: () => {}, complete: () => {} });
    });
    // No grace: the stop cuts the generation off.
    await first.app.stop(0);

    const second = await startServer({ modelsDir: endless, dataDir });
    try {
      await finished(second, job.id);
      const done = await getJob(second, job.id);
      expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
      const statuses = done.events.filter((e: any) => e.type === 'STATUS').map((e: any) => e.status);
      // Given back to the queue by the stop (each cut-off run is given back, so attempts stays 1), run again after the start.
      expect(statuses.slice(0, 3)).toEqual(['QUEUED', 'RUNNING', 'QUEUED']);
      expect(statuses.slice(-2)).toEqual(['RUNNING', 'SUCCEEDED']);
      // The second run's output starts again at index 0 and makes up the whole text.
      const lastRun = done.events.slice(done.events.findLastIndex((e: any) => e.status === 'RUNNING') + 1).filter((e: any) => e.type === 'OUTPUT');
      expect(lastRun[0].output.index).toBe(0);
      expect(lastRun.map((e: any) => e.output.text).join('')).toBe(done.result.text);
      const sync = await second.gql(`mutation ($params: GenerationParams) { generate(model: "fortune-lm", prompt: "Over and over", params: $params) { text tokenIds } }`, { params });
      expect({ text: done.result.text, tokenIds: done.result.tokenIds }).toEqual(sync.data.generate);
    } finally {
      await second.stop();
    }
  });
});

describe('API keys', () => {
  it('a key sees and cancels only the jobs it submitted; admin sees all; without the jobs scope, FORBIDDEN', async () => {
    const keyed = await startServer({ modelsDir: dir, apiKeys: 'alice-key-1=jobs,bob-key-22=jobs,root-key-333=admin+jobs,infer-only-4=infer' });
    const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
    try {
      const submitted = await keyed.gql(SUBMIT, { input: { infer: { model: 'digits', inputs: TENSOR() } } }, as('alice-key-1'));
      expect(submitted.errors).toBeUndefined();
      const id = submitted.data.submitJob.id;
      const look = `query ($id: ID!) { job(id: $id) { id } jobs(first: 5) { totalCount } }`;
      expect((await keyed.gql(look, { id }, as('alice-key-1'))).data).toEqual({ job: { id }, jobs: { totalCount: 1 } });
      expect((await keyed.gql(look, { id }, as('bob-key-22'))).data).toEqual({ job: null, jobs: { totalCount: 0 } });
      expect((await keyed.gql(look, { id }, as('root-key-333'))).data).toEqual({ job: { id }, jobs: { totalCount: 1 } });
      const node = await keyed.gql(`query ($id: ID!) { node(id: $id) { id } }`, { id }, as('bob-key-22'));
      expect(node.data?.node ?? null).toBeNull();
      const cancel = await keyed.gql(CANCEL, { id }, as('bob-key-22'));
      expect(cancel.errors?.[0]?.extensions?.code).toBe('JOB_NOT_FOUND');
      const forbidden = await keyed.gql(SUBMIT, { input: { infer: { model: 'digits', inputs: TENSOR() } } }, as('infer-only-4'));
      expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    } finally {
      await keyed.stop();
    }
  });
});

/** The bare id inside a Job's global id. */
function fromGlobal(id: string): string {
  return Buffer.from(id, 'base64').toString('utf8').split(':')[1]!;
}
