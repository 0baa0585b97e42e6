/**
 * Scale-out: the same batch of generation jobs (BENCH_JOBS=120, 32 tokens
 * each, all submitted at once) run by (a) one process with its SQLite store,
 * (b) one API + 1 worker over Redis, (c) one API + 2 workers over Redis.
 * Prints submit-to-finish jobs/s of each, the ratio 2 workers / 1 worker
 * (what adding a machine buys) and 1 worker / one process (what going
 * through Redis and BullMQ costs).
 *
 * On this 2-core machine the workers share the cores with each other, the
 * API and redis-server, so (c) measures coordination, not added hardware:
 * one worker already keeps both cores busy (one for onnxruntime, one for
 * its event loop). On N machines each worker brings its own cores.
 *
 * Run: npm run bench:scale   (needs /usr/bin/redis-server)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis } from '../test/helpers/redis.js';
import { fmt, ROOT, type ServerProcess, startServerProcess } from './lib.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 120);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 32);
const MODELS_DIR = join(ROOT, 'models');

async function post(url: string, query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const json = (await res.json()) as { data?: any; errors?: { message: string }[] };
  if (json.errors) throw new Error(json.errors[0]!.message);
  return json.data;
}

const SUBMIT = `mutation ($prompt: String!, $seed: Int!, $tokens: Int!) {
  submitJob(input: { generate: { model: "fortune-lm", prompt: $prompt, params: { temperature: 0.8, seed: $seed, maxTokens: $tokens } } }) { id }
}`;
const COUNTS = '{ open: jobs(first: 0, status: [QUEUED, RUNNING]) { totalCount } done: jobs(first: 0, status: [SUCCEEDED]) { totalCount } }';

/** Submits the batch through `api` and waits for the last job; returns jobs/s. */
async function run(api: string, round: string): Promise<number> {
  // Warm-up: one job end to end.
  await post(api, SUBMIT, { prompt: 'Warm up', seed: 0, tokens: 4 });
  while ((await post(api, COUNTS)).open.totalCount > 0) await new Promise((r) => setTimeout(r, 20));
  const before = (await post(api, COUNTS)).done.totalCount as number;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: JOBS }, (_, i) => post(api, SUBMIT, { prompt: `${round} fortune ${i}:`, seed: i, tokens: TOKENS })));
  for (;;) {
    const counts = await post(api, COUNTS);
    if (counts.open.totalCount === 0) {
      if (counts.done.totalCount - before !== JOBS) throw new Error(`${counts.done.totalCount - before} of ${JOBS} jobs succeeded`);
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return JOBS / ((performance.now() - t0) / 1000);
}

async function cluster(redisUrl: string, workers: number): Promise<number> {
  const env = { REDIS_URL: redisUrl, REDIS_PREFIX: `bench${workers}`, MODELS_DIR };
  const procs: ServerProcess[] = [];
  try {
    for (let i = 0; i < workers; i++) procs.push(await startServerProcess({ ...env, ROLE: 'worker' }));
    const api = await startServerProcess({ ...env, ROLE: 'api' });
    procs.push(api);
    // Every worker has said what it serves.
    while ((await post(api.url, '{ models { name workers } }')).models.find((m: any) => m.name === 'fortune-lm')?.workers.length !== workers) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return await run(api.url, `w${workers}`);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

async function main() {
  const single = await startServerProcess({ MODELS_DIR, DATA_DIR: mkdtempSync(join(tmpdir(), 'inferql-scale-')) });
  let one: number;
  try {
    one = await run(single.url, 'single');
  } finally {
    await single.stop();
  }
  const redis = await startRedis();
  try {
    const w1 = await cluster(redis.url, 1);
    const w2 = await cluster(redis.url, 2);
    console.log(`bench/scale: ${JOBS} generation jobs of ${TOKENS} tokens (fortune-lm), submitted at once, on this machine's 2 cores`);
    console.log(`  one process (SQLite):     ${fmt(one, 1)} jobs/s`);
    console.log(`  API + 1 worker (Redis):   ${fmt(w1, 1)} jobs/s`);
    console.log(`  API + 2 workers (Redis):  ${fmt(w2, 1)} jobs/s`);
    console.log(`  ratio 2 workers / 1 worker:  ${fmt(w2 / w1, 2)}`);
    console.log(`  ratio 1 worker / one process: ${fmt(w1 / one, 2)}`);
  } finally {
    await redis.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
