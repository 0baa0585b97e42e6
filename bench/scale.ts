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
 * Each round runs the three set-ups back to back; the figures are medians
 * over BENCH_ROUNDS (3) rounds, the ratios medians of each round's ratio.
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
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
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

async function cluster(redisUrl: string, workers: number, round: number): Promise<number> {
  const env = { REDIS_URL: redisUrl, REDIS_PREFIX: `bench${round}w${workers}`, MODELS_DIR };
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

async function single(): Promise<number> {
  const proc = await startServerProcess({ MODELS_DIR, DATA_DIR: mkdtempSync(join(tmpdir(), 'inferql-scale-')) });
  try {
    return await run(proc.url, 'single');
  } finally {
    await proc.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const redis = await startRedis();
  const rounds: { one: number; w1: number; w2: number }[] = [];
  try {
    // Rounds of the three set-ups back to back, so each ratio compares runs made side by side.
    for (let r = 0; r < ROUNDS; r++) rounds.push({ one: await single(), w1: await cluster(redis.url, 1, r), w2: await cluster(redis.url, 2, r) });
  } finally {
    await redis.stop();
  }
  console.log(`bench/scale: ${JOBS} generation jobs of ${TOKENS} tokens (fortune-lm), submitted at once, on this machine's 2 cores; ${ROUNDS} rounds`);
  for (const [i, r] of rounds.entries()) {
    console.log(`  round ${i + 1}: one process ${fmt(r.one, 1)}, API + 1 worker ${fmt(r.w1, 1)}, API + 2 workers ${fmt(r.w2, 1)} jobs/s; 2 workers / 1 worker ${fmt(r.w2 / r.w1, 2)}, 1 worker / one process ${fmt(r.w1 / r.one, 2)}`);
  }
  console.log(`  median: one process (SQLite) ${fmt(median(rounds.map((r) => r.one)), 1)} jobs/s, API + 1 worker (Redis) ${fmt(median(rounds.map((r) => r.w1)), 1)}, API + 2 workers ${fmt(median(rounds.map((r) => r.w2)), 1)}`);
  console.log(`  ratio 2 workers / 1 worker (median of rounds):  ${fmt(median(rounds.map((r) => r.w2 / r.w1)), 2)}`);
  console.log(`  ratio 1 worker / one process (median of rounds): ${fmt(median(rounds.map((r) => r.w1 / r.one)), 2)}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
