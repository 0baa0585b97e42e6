import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProcess } from '../helpers/process.js';
import { gql, SHIPPED_MODELS } from '../helpers/server.js';

/**
 * The crash test: a real server process, 30 mixed jobs, SIGKILL while some
 * run, a restart on the same DATA_DIR. Every job must end SUCCEEDED exactly
 * once with the synchronous call's output, and every result stored before
 * the kill must read back byte for byte.
 */

/** The server on `dataDir`, in its own process. */
const startOn = (dataDir: string, env: Record<string, string> = {}) => startProcess({ DATA_DIR: dataDir, MODELS_DIR: SHIPPED_MODELS, ...env });

const PIXELS = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0];
const pixels = (i: number) => PIXELS.map((v, k) => (v + i * (k % 7)) % 17);

const INFER_SELECTION = 'outputs { name datatype shape data base64 }';
const CLASSIFY_SELECTION = 'labels { label score }';
const GENERATE_SELECTION = 'text tokenIds finishReason usage { promptTokens completionTokens totalTokens }';
const RESULT = `result {
  __typename
  ... on InferResult { ${INFER_SELECTION} metrics { queueMs computeMs batchSize } }
  ... on ClassifyResult { classifications { ${CLASSIFY_SELECTION} metrics { queueMs computeMs batchSize } } }
  ... on Generation { ${GENERATE_SELECTION} metrics { queueMs ttftMs tokensPerSecond totalMs } }
}`;
const ALL = `query ($after: String) { jobs(first: 100, after: $after) { totalCount edges { node { id status attempts error { code message } ${RESULT} events { seq type status } } } } }`;

/** The 30 jobs: ten of each kind; generations long enough to be cut off. */
function jobInputs() {
  const inputs: { kind: string; input: any }[] = [];
  for (let i = 0; i < 10; i++) {
    inputs.push({ kind: 'infer', input: { infer: { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: pixels(i) }] } } });
    inputs.push({ kind: 'classify', input: { classify: { model: 'digits', inputs: [{ values: pixels(i + 10) }, { values: pixels(i + 20) }], topK: 4 } } });
    inputs.push({ kind: 'generate', input: { generate: { model: 'fortune-lm', prompt: `Fortune ${i}:`, params: { temperature: 0.9, seed: 100 + i, maxTokens: 120 + 10 * i, repetitionPenalty: 1.1 } } } });
  }
  return inputs;
}

/** What the synchronous mutation answers for the same input (metrics left out). */
async function syncOutput(url: string, job: { kind: string; input: any }) {
  if (job.kind === 'infer') {
    const { model, inputs } = job.input.infer;
    const res = await gql(url, `mutation ($model: String!, $inputs: [TensorInput!]!) { infer(model: $model, inputs: $inputs) { ${INFER_SELECTION} } }`, { model, inputs });
    return res.data.infer;
  }
  if (job.kind === 'classify') {
    const { model, inputs, topK } = job.input.classify;
    const res = await gql(url, `mutation ($model: String!, $inputs: [ClassifyInput!]!, $topK: Int) { classify(model: $model, inputs: $inputs, topK: $topK) { ${CLASSIFY_SELECTION} } }`, { model, inputs, topK });
    return { classifications: res.data.classify };
  }
  const { model, prompt, params } = job.input.generate;
  const res = await gql(url, `mutation ($model: String!, $prompt: String!, $params: GenerationParams) { generate(model: $model, prompt: $prompt, params: $params) { ${GENERATE_SELECTION} } }`, { model, prompt, params });
  return res.data.generate;
}

/** A result without its metrics (run times differ from the synchronous call's). */
function withoutMetrics(result: any) {
  const { __typename, metrics, ...rest } = result;
  if (rest.classifications) rest.classifications = rest.classifications.map(({ metrics: _m, ...c }: any) => c);
  return rest;
}

async function allJobs(url: string): Promise<any[]> {
  const res = await gql(url, ALL);
  expect(res.errors).toBeUndefined();
  return res.data.jobs.edges.map((e: any) => e.node);
}

describe('crash recovery', () => {
  it('SIGKILL mid-run, restart on the same DATA_DIR: every job SUCCEEDED once, with the synchronous output; stored results unchanged', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'inferql-crash-'));
    // Few at a time, so some jobs are still queued and some running when the kill comes.
    const env = { JOB_CONCURRENCY: '4', MAX_COST: '10000000' };
    const first = await startOn(dataDir, env);
    const inputs = jobInputs();
    const expected: unknown[] = [];
    for (const job of inputs) expected.push(await syncOutput(first.url, job));

    const ids: string[] = [];
    for (const job of inputs) {
      const res = await gql(first.url, `mutation ($input: JobInput!) { submitJob(input: $input) { id status } }`, { input: job.input });
      expect(res.errors).toBeUndefined();
      ids.push(res.data.submitJob.id);
    }
    // Wait for a moment where some jobs have finished and some are running, then kill at once.
    let before: any[] = [];
    for (;;) {
      before = await allJobs(first.url);
      const succeeded = before.filter((j) => j.status === 'SUCCEEDED').length;
      const running = before.filter((j) => j.status === 'RUNNING').length;
      if (succeeded >= 3 && running >= 1) break;
      expect(succeeded).toBeLessThan(30); // finished everything before we could kill: make the generations longer
      await new Promise((r) => setTimeout(r, 10));
    }
    await first.kill();
    const runningAtKill = new Set(before.filter((j) => j.status === 'RUNNING').map((j) => j.id));

    const second = await startOn(dataDir, env);
    let after: any[] = [];
    for (;;) {
      const res = await gql(second.url, `{ jobs(first: 0, status: [QUEUED, RUNNING]) { totalCount } }`);
      if (res.data.jobs.totalCount === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    after = await allJobs(second.url);
    await second.kill();

    // Every job, once.
    expect(after).toHaveLength(30);
    expect(new Set(after.map((j) => j.id))).toEqual(new Set(ids));
    const byId = new Map(after.map((j) => [j.id, j]));
    ids.forEach((id, i) => {
      const job = byId.get(id)!;
      expect({ id, status: job.status, error: job.error }).toEqual({ id, status: 'SUCCEEDED', error: null });
      // Same output as the synchronous call.
      expect(withoutMetrics(job.result)).toEqual(expected[i]);
      // One finishing event, the events numbered without gaps.
      expect(job.events.filter((e: any) => e.status === 'SUCCEEDED')).toHaveLength(1);
      expect(job.events.map((e: any) => e.seq)).toEqual(job.events.map((_: unknown, k: number) => k + 1));
      // Each run started is one attempt, and one STATUS RUNNING event.
      expect(job.events.filter((e: any) => e.status === 'RUNNING')).toHaveLength(job.attempts);
    });
    // Jobs seen running just before the kill were cut off (unless they finished in that instant) and ran again.
    const cutOff = after.filter((j) => runningAtKill.has(j.id) && j.attempts >= 2);
    expect(cutOff.length).toBeGreaterThanOrEqual(1);
    for (const job of cutOff) expect(job.events.map((e: any) => e.status).filter(Boolean)).toEqual(['QUEUED', 'RUNNING', 'QUEUED', 'RUNNING', 'SUCCEEDED']);
    // Results stored before the kill read back byte for byte, metrics and all.
    const finishedBefore = before.filter((j) => j.status === 'SUCCEEDED');
    expect(finishedBefore.length).toBeGreaterThanOrEqual(3);
    for (const job of finishedBefore) {
      expect(JSON.stringify(byId.get(job.id).result)).toBe(JSON.stringify(job.result));
      expect(byId.get(job.id).attempts).toBe(job.attempts);
    }
  }, 240_000);

  it('a job cut off by a crash once more than JOB_MAX_ATTEMPTS allows fails with INTERRUPTED', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'inferql-crash-'));
    const env = { JOB_MAX_ATTEMPTS: '1' };
    const first = await startOn(dataDir, env);
    const submitted = await gql(first.url, `mutation ($input: JobInput!) { submitJob(input: $input) { id } }`, {
      input: { generate: { model: 'fortune-lm', prompt: 'On and on', params: { temperature: 1, seed: 3, maxTokens: 500, repetitionPenalty: 1 } } },
    });
    const id = submitted.data.submitJob.id;
    for (;;) {
      const res = await gql(first.url, `query ($id: ID!) { job(id: $id) { status progress { completed } } }`, { id });
      if (res.data.job.status === 'RUNNING' && (res.data.job.progress?.completed ?? 0) > 0) break;
      expect(res.data.job.status).not.toBe('SUCCEEDED');
      await new Promise((r) => setTimeout(r, 10));
    }
    await first.kill();
    const second = await startOn(dataDir, env);
    const res = await gql(second.url, `query ($id: ID!) { job(id: $id) { status attempts error { code message } events { status } } }`, { id });
    await second.kill();
    expect(res.data.job).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'INTERRUPTED' } });
    expect(res.data.job.events.filter((e: any) => e.status).map((e: any) => e.status)).toEqual(['QUEUED', 'RUNNING', 'FAILED']);
  }, 120_000);
});
