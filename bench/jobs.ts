/**
 * Jobs against the synchronous path: 1,000 small `infer` requests on the
 * digits model, sent by the same number of concurrent clients, (a) as
 * `infer` mutations (each answer is its result) and (b) as `submitJob`
 * (the clients only submit; the run ends when the last job has finished).
 * Prints submit-to-finish throughput of each and the ratio jobs / sync.
 *
 * Run: npm run bench:jobs   (BENCH_JOBS=1000, BENCH_CONCURRENCY=32)
 */
import { fmt, percentile, startServerProcess } from './lib.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const PIXELS = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0];
const inputs = (i: number) => [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: PIXELS.map((v, k) => (v + i * k) % 17) }];

async function post(url: string, query: string, variables: Record<string, unknown>): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const json = (await res.json()) as { data?: any; errors?: { message: string }[] };
  if (json.errors) throw new Error(json.errors[0]!.message);
  return json.data;
}

/** `count` requests from `concurrency` clients back to back; returns each one's latency. */
async function drive(count: number, send: (i: number) => Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        await send(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return latencies.sort((a, b) => a - b);
}

const INFER = 'mutation ($inputs: [TensorInput!]!) { infer(model: "digits", inputs: $inputs) { outputs { name } } }';
const SUBMIT = 'mutation ($inputs: [TensorInput!]!) { submitJob(input: { infer: { model: "digits", inputs: $inputs } }) { id } }';
const OPEN = '{ jobs(first: 0, status: [QUEUED, RUNNING]) { totalCount } done: jobs(first: 0, status: [SUCCEEDED]) { totalCount } }';

async function main() {
  const server = await startServerProcess();
  try {
    await drive(100, (i) => post(server.url, INFER, { inputs: inputs(i) })); // warm-up

    const t0 = performance.now();
    const syncLatency = await drive(JOBS, (i) => post(server.url, INFER, { inputs: inputs(i) }));
    const syncSeconds = (performance.now() - t0) / 1000;

    const t1 = performance.now();
    const submitLatency = await drive(JOBS, (i) => post(server.url, SUBMIT, { inputs: inputs(i) }));
    const submittedAt = performance.now();
    let succeeded = 0;
    for (;;) {
      const data = await post(server.url, OPEN, {});
      succeeded = data.done.totalCount;
      if (data.jobs.totalCount === 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const jobSeconds = (performance.now() - t1) / 1000;
    if (succeeded !== JOBS) throw new Error(`${succeeded} of ${JOBS} jobs succeeded`);

    const syncRate = JOBS / syncSeconds;
    const jobRate = JOBS / jobSeconds;
    console.log(`${JOBS} small infer requests (digits), ${CONCURRENCY} concurrent clients`);
    console.log(`  sync infer:  ${fmt(syncRate, 0)} req/s   (p50 ${fmt(percentile(syncLatency, 50))} ms, p99 ${fmt(percentile(syncLatency, 99))} ms)`);
    console.log(`  jobs:        ${fmt(jobRate, 0)} jobs/s submit-to-finish   (submit p50 ${fmt(percentile(submitLatency, 50))} ms, p99 ${fmt(percentile(submitLatency, 99))} ms; all submitted after ${fmt((submittedAt - t1) / 1000, 2)} s, all finished after ${fmt(jobSeconds, 2)} s)`);
    console.log(`  ratio jobs / sync: ${fmt(jobRate / syncRate, 2)}`);
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
