import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ServerProcess, startProcess } from '../helpers/process.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { gql, modelsDir, sse, startServer, subscribeAll, type TestServer, withoutEos } from '../helpers/server.js';

/**
 * Distributed mode end to end: a real redis-server, two API processes and
 * two worker processes, talked to only through their public endpoints.
 */

const STREAM = `subscription ($prompt: String!, $params: GenerationParams) {
  generate(model: "fortune-lm", prompt: $prompt, params: $params) { index tokenId text finishReason }
}`;
const GENERATE = `mutation ($prompt: String!, $params: GenerationParams) {
  generate(model: "fortune-lm", prompt: $prompt, params: $params) { text tokenIds finishReason }
}`;
const SUBMIT = `mutation ($input: JobInput!) { submitJob(input: $input) { id status } }`;
const JOB = `query ($id: ID!) {
  job(id: $id) {
    status attempts progress { completed }
    events { seq type status attempt }
    result { ... on Generation { text tokenIds } ... on ClassifyResult { classifications { labels { label } } } }
  }
}`;

const GREEDY = { temperature: 0, maxTokens: 24, repetitionPenalty: 1 };
const LONG = { temperature: 0.8, seed: 7, maxTokens: 230, repetitionPenalty: 1 };

/** Polls `read` until `done` holds (every 50 ms, up to `ms`). */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A metric's value in a process's /metrics (0 when absent). */
async function metric(proc: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(proc.url.replace('/graphql', '/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes('fortune-lm'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const ready = async (proc: ServerProcess) => (await fetch(proc.url.replace('/graphql', '/ready'))).status;

describe('distributed mode: 2 API and 2 worker processes over one Redis', () => {
  let redis: RedisServer;
  let apiA: ServerProcess;
  let apiB: ServerProcess;
  let workers: ServerProcess[];
  let reference: TestServer;
  const models = withoutEos(modelsDir({ 'fortune-lm': {}, 'fortune-topic': {} }));
  const dataDir = mkdtempSync(join(tmpdir(), 'inferql-cluster-'));
  const env = () => ({ REDIS_URL: redis.url, MODELS_DIR: models, STALL_MS: '1500', SHUTDOWN_GRACE_MS: '200', DATA_DIR: dataDir });

  beforeAll(async () => {
    redis = await startRedis();
    workers = await Promise.all([startProcess({ ...env(), ROLE: 'worker' }), startProcess({ ...env(), ROLE: 'worker' })]);
    [apiA, apiB] = await Promise.all([startProcess({ ...env(), ROLE: 'api' }), startProcess(env(), ['serve', '--role', 'api'])]);
    // The single-process server the cluster must agree with.
    reference = await startServer({ modelsDir: models });
  });

  afterAll(async () => {
    await Promise.all([apiA, apiB, ...(workers ?? [])].map((p) => p?.stop()));
    await reference?.stop();
    await redis?.stop();
  });

  it('each API shows the union of the models the live workers serve, and which workers serve each', async () => {
    for (const api of [apiA, apiB]) {
      const res = await gql(api.url, '{ models { name status task workers } }');
      expect(res.errors).toBeUndefined();
      expect(res.data.models.map((m: any) => [m.name, m.status, m.workers.length])).toEqual([
        ['fortune-lm', 'READY', 2],
        ['fortune-topic', 'READY', 2],
      ]);
    }
    // A worker answers health checks and metrics, not GraphQL.
    expect(await ready(workers[0]!)).toBe(200);
    expect((await fetch(workers[0]!.url, { method: 'POST' })).status).toBe(404);
  });

  it('a generate subscription through API A streams the single-process greedy tokens while API B serves queries', async () => {
    const client = createClient({ url: apiA.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const classify = Array.from({ length: 12 }, (_, i) =>
      gql(apiB.url, 'mutation ($t: String!) { classify(model: "fortune-topic", inputs: [{ text: $t }], topK: 1) { labels { label } } }', { t: `Fortune ${i}` }),
    );
    const sub = subscribeAll(client, STREAM, { prompt: 'The meaning of life is', params: GREEDY });
    const answers = await Promise.all(classify);
    const { events, errors } = await sub;
    await client.dispose();
    expect(errors).toEqual([]);
    expect(answers.every((a) => a.errors === undefined && a.data.classify[0].labels.length === 1)).toBe(true);
    const stream = events.map((e: any) => e.generate);
    expect(stream.map((e: any) => e.index)).toEqual(stream.map((_: unknown, i: number) => i));
    const alone = await reference.gql(GENERATE, { prompt: 'The meaning of life is', params: GREEDY });
    expect(stream.map((e: any) => e.tokenId)).toEqual(alone.data.generate.tokenIds);
    expect(stream.map((e: any) => e.text).join('')).toBe(alone.data.generate.text);
    // The mutation through B gives the same.
    const viaB = await gql(apiB.url, GENERATE, { prompt: 'The meaning of life is', params: GREEDY });
    expect(viaB.data.generate.tokenIds).toEqual(alone.data.generate.tokenIds);
    // serverStats on an API process adds up what the workers report in their heartbeats.
    const stats = await until(
      async () => (await gql(apiA.url, '{ serverStats { models { name status tokensTotal } } }')).data.serverStats.models,
      (models: any[]) => models.find((m) => m.name === 'fortune-lm')?.tokensTotal >= 2 * GREEDY.maxTokens,
      10_000,
    );
    expect(stats.map((m: any) => [m.name, m.status])).toEqual([
      ['fortune-lm', 'READY'],
      ['fortune-topic', 'READY'],
    ]);
  });

  it('bad input gets the same error code through an API as in one process', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ prompt: 'x', params: { temperature: -1 } }, 'BAD_GENERATION_PARAMS'],
      [{ prompt: 'x', params: { maxTokens: 100_000 } }, 'BAD_GENERATION_PARAMS'],
    ];
    for (const [variables, code] of cases) {
      expect((await gql(apiA.url, GENERATE, variables)).errors?.[0]?.extensions?.code).toBe(code);
      expect((await reference.gql(GENERATE, variables)).errors?.[0]?.extensions?.code).toBe(code);
    }
    const missing = await gql(apiB.url, 'mutation { generate(model: "nope", prompt: "x") { text } }');
    expect(missing.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
    const badJob = await gql(apiB.url, SUBMIT, { input: { generate: { model: 'fortune-lm', prompt: 'x', params: { topP: 0 } } } });
    expect(badJob.errors?.[0]?.extensions?.code).toBe('BAD_GENERATION_PARAMS');

    // Anyone who reaches Redis can publish: foreign messages on inferql's channels are dropped, not fatal.
    const outsider = new Redis(redis.url);
    for (const message of ['hello', 'null', '{"op":"load"}', '[1,2]']) await outsider.publish('inferql:admin', message);
    await outsider.publish('inferql:cancel:bogus', '');
    await outsider.publish('inferql:cancel:stream:', 'x');
    await outsider.quit();
    await new Promise((r) => setTimeout(r, 200));
    for (const proc of [apiA, apiB, ...workers]) expect(proc.child.exitCode).toBeNull();
    expect((await gql(apiA.url, GENERATE, { prompt: 'Still here', params: GREEDY })).errors).toBeUndefined();
  });

  it('50 jobs submitted across both APIs all finish, each exactly once', async () => {
    const ids = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const input =
          i % 2 === 0
            ? { generate: { model: 'fortune-lm', prompt: `Job ${i}:`, params: { temperature: 0.7, seed: i, maxTokens: 6 } } }
            : { classify: { model: 'fortune-topic', inputs: [{ text: `Job ${i}` }], topK: 1 } };
        const res = await gql(i < 25 ? apiA.url : apiB.url, SUBMIT, { input });
        expect(res.errors).toBeUndefined();
        return res.data.submitJob.id as string;
      }),
    );
    const jobs = await until(
      () => Promise.all(ids.map(async (id, i) => (await gql(i % 2 ? apiA.url : apiB.url, JOB, { id })).data.job)),
      (all) => all.every((j: any) => j.status === 'SUCCEEDED' || j.status === 'FAILED'),
    );
    for (const job of jobs) {
      expect(job).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
      expect(job.events.filter((e: any) => e.type === 'STATUS').map((e: any) => e.status)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
      expect(job.events.map((e: any) => e.seq)).toEqual(job.events.map((_: unknown, k: number) => k + 1));
    }
    // A job's generation is the one the synchronous call gives.
    const alone = await reference.gql(GENERATE, { prompt: 'Job 0:', params: { temperature: 0.7, seed: 0, maxTokens: 6 } });
    expect(jobs[0].result.tokenIds).toEqual(alone.data.generate.tokenIds);
  });

  it('leaving a stream early stops its sequence on the worker', async () => {
    const client = createClient({ url: apiB.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const tokensBefore = (await Promise.all(workers.map((w) => metric(w, 'vllm:generation_tokens_total')))).reduce((a, b) => a + b, 0);
    await new Promise<void>((resolve, reject) => {
      let received = 0;
      const unsubscribe = client.subscribe({ query: STREAM, variables: { prompt: 'Leave early:', params: LONG } }, {
        next: () => {
          if (++received === 3) {
            unsubscribe();
            resolve();
          }
        },
        error: reject,
        complete: () => reject(new Error('ended before it was left')),
      });
    });
    await until(() => Promise.all(workers.map((w) => metric(w, 'vllm:num_requests_running'))), (running) => running.every((n) => n === 0), 10_000);
    const tokensAfter = (await Promise.all(workers.map((w) => metric(w, 'vllm:generation_tokens_total')))).reduce((a, b) => a + b, 0);
    expect(tokensAfter - tokensBefore).toBeLessThan(LONG.maxTokens / 2);
    await client.dispose();
  });

  it('reloadModel, unloadModel and loadModel through an API run on every worker; modelEvents on the other API shows each step', async () => {
    const CLASSIFY = 'mutation { classify(model: "fortune-topic", inputs: [{ text: "A penny saved" }], topK: 1) { labels { label } } }';
    const controller = new AbortController();
    const seen: any[] = [];
    const watching = (async () => {
      try {
        for await (const message of sse(apiB.url, 'subscription { modelEvents { model kind } }', {}, { signal: controller.signal })) seen.push(message.data!.modelEvents);
      } catch {
        // aborted below
      }
    })();
    await new Promise((r) => setTimeout(r, 300));

    const reloaded = await gql(apiA.url, 'mutation { reloadModel(name: "fortune-topic") { name status workers } }');
    expect(reloaded.errors).toBeUndefined();
    expect(reloaded.data.reloadModel).toMatchObject({ name: 'fortune-topic', status: 'READY' });
    expect(reloaded.data.reloadModel.workers).toHaveLength(2);

    const unloaded = await gql(apiA.url, 'mutation { unloadModel(name: "fortune-topic") { status workers } }');
    expect(unloaded.data.unloadModel).toEqual({ status: 'UNLOADED', workers: [] });
    await until(() => gql(apiB.url, CLASSIFY), (res) => res.errors?.[0]?.extensions?.code === 'MODEL_NOT_READY', 10_000);

    const loaded = await gql(apiB.url, 'mutation { loadModel(name: "fortune-topic") { status workers } }');
    expect(loaded.data.loadModel.status).toBe('READY');
    expect(loaded.data.loadModel.workers).toHaveLength(2);
    await until(() => gql(apiA.url, CLASSIFY), (res) => res.errors === undefined, 10_000);

    const missing = await gql(apiA.url, 'mutation { loadModel(name: "nope") { status } }');
    expect(missing.errors?.[0]?.extensions).toMatchObject({ code: 'MODEL_NOT_FOUND', model: 'nope' });
    expect(missing.errors?.[0]?.message).toMatch(/^On worker /);

    await until(async () => seen.filter((e) => e.model === 'fortune-topic' && e.kind === 'READY').length, (n) => n >= 2, 10_000);
    controller.abort();
    await watching;
    const kinds = (kind: string) => seen.filter((e) => e.model === 'fortune-topic' && e.kind === kind).length;
    expect([kinds('RELOADING'), kinds('SWITCHED'), kinds('DRAINED'), kinds('UNLOADED'), kinds('LOADING')]).toEqual([2, 2, 2, 2, 2]);
  });

  it('a rolling restart: SIGTERM to the worker running a job gives the job back, the other worker finishes it, a new worker joins', async () => {
    const submitted = await gql(apiB.url, SUBMIT, { input: { generate: { model: 'fortune-lm', prompt: 'Rolling:', params: LONG } } });
    const id = submitted.data.submitJob.id;
    await until(async () => (await gql(apiA.url, JOB, { id })).data.job, (job) => (job.progress?.completed ?? 0) >= 5);
    const running = await Promise.all(workers.map((w) => metric(w, 'vllm:num_requests_running')));
    const leaving = workers[running.indexOf(1)]!;
    expect(leaving).toBeDefined();
    await leaving.stop();
    expect(await leaving.exited).toBe(0);
    workers = workers.filter((w) => w !== leaving);

    const job = await until(async () => (await gql(apiA.url, JOB, { id })).data.job, (j) => j.status !== 'RUNNING' && j.status !== 'QUEUED', 60_000);
    // Given back, not failed: the run the stop cut short does not count.
    expect(job).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    expect(job.events.filter((e: any) => e.type === 'STATUS').map((e: any) => [e.status, e.attempt])).toEqual([
      ['QUEUED', null],
      ['RUNNING', 1],
      ['QUEUED', null],
      ['RUNNING', 1],
      ['SUCCEEDED', null],
    ]);
    const alone = await reference.gql(GENERATE, { prompt: 'Rolling:', params: LONG });
    expect(job.result.tokenIds).toEqual(alone.data.generate.tokenIds);
    // The replacement joins and takes work.
    workers.push(await startProcess({ ...env(), ROLE: 'worker' }));
    await until(async () => (await gql(apiA.url, '{ models { workers } }')).data.models[0].workers.length, (n) => n === 2, 15_000);
  });

  it('SIGKILL of the worker running a job: the job finishes on the other worker, once, and jobEvents shows the retry', async () => {
    const submitted = await gql(apiA.url, SUBMIT, { input: { generate: { model: 'fortune-lm', prompt: 'Survive:', params: LONG } } });
    const id = submitted.data.submitJob.id;
    // Followed live through the other API: the events come over Redis pub/sub from whichever worker runs it.
    const live = (async () => {
      const seen: any[] = [];
      for await (const message of sse(apiB.url, 'subscription ($id: ID!) { jobEvents(id: $id) { seq type status attempt } }', { id })) seen.push(message.data!.jobEvents);
      return seen;
    })();
    await until(async () => (await gql(apiB.url, JOB, { id })).data.job, (job) => (job.progress?.completed ?? 0) >= 5);
    const running = await Promise.all(workers.map((w) => metric(w, 'vllm:num_requests_running')));
    const victim = workers[running.indexOf(1)]!;
    expect(victim).toBeDefined();
    await victim.kill();
    workers = workers.filter((w) => w !== victim);

    const job = await until(async () => (await gql(apiB.url, JOB, { id })).data.job, (j) => j.status !== 'RUNNING' && j.status !== 'QUEUED', 60_000);
    expect(job).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    const statuses = job.events.filter((e: any) => e.type === 'STATUS').map((e: any) => [e.status, e.attempt]);
    expect(statuses).toEqual([
      ['QUEUED', null],
      ['RUNNING', 1],
      ['QUEUED', null],
      ['RUNNING', 2],
      ['SUCCEEDED', null],
    ]);
    // The live stream saw every stored event, once, in order, ending with SUCCEEDED.
    expect(await live).toEqual(job.events);
    // The re-run gives the text one uninterrupted run gives (the seed was pinned at submission).
    const alone = await reference.gql(GENERATE, { prompt: 'Survive:', params: LONG });
    expect(job.result.tokenIds).toEqual(alone.data.generate.tokenIds);
    // The dead worker drops out of the directory once its heartbeat expires.
    await until(async () => (await gql(apiA.url, '{ models { workers } }')).data.models[0].workers.length, (n) => n === 1, 15_000);
  });

  it('a stream whose worker dies ends with UNAVAILABLE (a caller is waiting: no silent re-run)', async () => {
    workers.push(await startProcess({ ...env(), ROLE: 'worker' }));
    await until(async () => (await gql(apiA.url, '{ models { workers } }')).data.models[0].workers.length, (n) => n === workers.length, 15_000);
    const client = createClient({ url: apiA.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    let received = 0;
    let started!: () => void;
    const fifth = new Promise<void>((r) => (started = r));
    const ended = new Promise<unknown[]>((resolve) => {
      const errors: unknown[] = [];
      client.subscribe(
        { query: STREAM, variables: { prompt: 'Cut off:', params: LONG } },
        {
          next: (value) => {
            if (value.errors) errors.push(...value.errors);
            if (++received === 5) started();
          },
          // graphql-ws hands an error message's errors over as an array.
          error: (error) => resolve([...errors, ...(Array.isArray(error) ? error : [error])]),
          complete: () => resolve(errors),
        },
      );
    });
    await fifth;
    const running = await Promise.all(workers.map((w) => metric(w, 'vllm:num_requests_running')));
    const victim = workers[running.indexOf(1)]!;
    await victim.kill();
    workers = workers.filter((w) => w !== victim);
    const errors = (await ended) as { message: string; extensions?: { code?: string } }[];
    expect(errors.map((e) => e.extensions?.code), JSON.stringify(errors)).toEqual(['UNAVAILABLE']);
    expect(received).toBeLessThan(LONG.maxTokens);
    await client.dispose();
  });

  it('Redis stopped: readiness goes false and requests get UNAVAILABLE; restarted: service resumes with no restart of inferql', async () => {
    await redis.stop();
    await until(() => ready(apiA), (status) => status === 503, 10_000);
    const refused = await gql(apiB.url, GENERATE, { prompt: 'x', params: GREEDY });
    expect(refused.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
    for (const proc of [apiA, apiB, ...workers]) expect(proc.child.exitCode).toBeNull();

    await redis.start();
    for (const proc of [apiA, apiB, ...workers]) await until(() => ready(proc), (status) => status === 200, 20_000);
    const again = await until(() => gql(apiB.url, GENERATE, { prompt: 'The meaning of life is', params: GREEDY }), (res) => res.errors === undefined, 20_000);
    const alone = await reference.gql(GENERATE, { prompt: 'The meaning of life is', params: GREEDY });
    expect(again.data.generate.tokenIds).toEqual(alone.data.generate.tokenIds);
    const submitted = await gql(apiA.url, SUBMIT, { input: { classify: { model: 'fortune-topic', inputs: [{ text: 'After the outage' }], topK: 1 } } });
    expect(submitted.errors).toBeUndefined();
    const job = await until(async () => (await gql(apiA.url, JOB, { id: submitted.data.submitJob.id })).data.job, (j) => j.status === 'SUCCEEDED', 20_000);
    expect(job.result.classifications[0].labels).toHaveLength(1);
  });
});

describe('distributed mode at start', () => {
  it('a Redis that cannot be reached is a clear startup error, not a stack trace', async () => {
    const redis = await startRedis();
    const { url } = redis;
    await redis.stop();
    const started = startProcess({ REDIS_URL: url, ROLE: 'api' });
    await expect(started).rejects.toThrow(new RegExp(`inferql: failed to start: cannot reach Redis at ${url.replace(/[/.]/g, '\\$&')}: connect ECONNREFUSED`));
    await expect(started).rejects.not.toThrow(/\n\s+at /);
  });
});
