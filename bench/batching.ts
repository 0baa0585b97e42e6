/**
 * Dynamic batching on the text classifier (fortune-topic), measured in one run:
 *   (a) raw in-process onnxruntime throughput at batch 1 and at the best batch size,
 *   (b) a no-op GraphQL query at the same concurrency (the transport ceiling),
 *   (c) inferql `classify` with batching,
 *   (d) inferql `classify` with MAX_BATCH_SIZE=1,
 * and the ratios c/d and c/min(a, b), with p50/p99 latency for c and d.
 *
 * Run: npm run bench:batching   (BENCH_SECONDS=5 by default per measurement)
 */
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { readManifest } from '../src/models/manifest.js';
import { TextTokenizer } from '../src/models/tokenizer.js';
import { fmt, httpLoad, ROOT, startServerProcess } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = 64;
const MODEL = 'fortune-topic';

/** Short quotes, as a chat front end would send them. */
const QUOTES = [
  'A friend in need is a friend indeed.',
  'Love is patient, love is kind.',
  'The computer is down again.',
  'Never put off until tomorrow what you can do today.',
  'All that glitters is not gold.',
  'He who laughs last laughs best.',
  'Fortune favors the bold.',
  'A penny saved is a penny earned.',
  'Time flies like an arrow; fruit flies like a banana.',
  'Do not meddle in the affairs of wizards.',
  'There is no place like home.',
  'Knowledge is power.',
  'The early bird catches the worm.',
  'Every cloud has a silver lining.',
  'Beauty is in the eye of the beholder.',
  'Actions speak louder than words.',
];

async function rawThroughput(session: ort.InferenceSession, encoded: number[][], batch: number): Promise<number> {
  const end = performance.now() + SECONDS * 1000;
  let rows = 0;
  let i = 0;
  const start = performance.now();
  while (performance.now() < end) {
    const group = Array.from({ length: batch }, () => encoded[i++ % encoded.length]!);
    const length = Math.max(...group.map((g) => g.length));
    const ids = new BigInt64Array(batch * length);
    const mask = new BigInt64Array(batch * length);
    group.forEach((g, r) => g.forEach((id, c) => ((ids[r * length + c] = BigInt(id)), (mask[r * length + c] = 1n))));
    await session.run({ input_ids: new ort.Tensor('int64', ids, [batch, length]), attention_mask: new ort.Tensor('int64', mask, [batch, length]) });
    rows += batch;
  }
  return (rows / (performance.now() - start)) * 1000;
}

async function main() {
  const manifest = await readManifest(join(ROOT, 'models', MODEL));
  const tokenizer = await TextTokenizer.load(manifest.tokenizerPath!, manifest.tokenizerConfigPath);
  const encoded = QUOTES.map((q) => tokenizer.encode(q));
  console.log(`bench/batching: ${MODEL}, ${QUOTES.length} short quotes (${Math.min(...encoded.map((e) => e.length))}–${Math.max(...encoded.map((e) => e.length))} tokens), ${CONCURRENCY} concurrent clients, ${SECONDS}s per measurement\n`);

  // (a) raw onnxruntime, in process, nothing else running.
  const session = await ort.InferenceSession.create(manifest.onnxPath, { graphOptimizationLevel: 'all' });
  const raw: Record<number, number> = {};
  for (const batch of [1, 8, 16, 32, 64]) {
    raw[batch] = await rawThroughput(session, encoded, batch);
    console.log(`(a) raw onnxruntime batch ${String(batch).padStart(2)}: ${fmt(raw[batch]!)} rows/s`);
  }
  await session.release();
  const [bestBatch, bestRaw] = Object.entries(raw).reduce((a, b) => (b[1] > a[1] ? b : a));
  const rawGain = bestRaw / raw[1]!;
  console.log(`    best batch ${bestBatch}: gain ${fmt(rawGain, 2)}x over batch 1\n`);

  const classify = (i: number) => ({
    query: 'mutation ($t: String!) { classify(model: "fortune-topic", inputs: [{ text: $t }], topK: 1) { labels { label score } } }',
    variables: { t: QUOTES[i % QUOTES.length] },
  });

  // (b) transport ceiling, (c) batching on.
  const batched = await startServerProcess({ MODELS_DIR: join(ROOT, 'models') });
  let noop;
  let c;
  try {
    await httpLoad(batched.url, CONCURRENCY, 1000, classify); // warm-up
    noop = await httpLoad(batched.url, CONCURRENCY, SECONDS * 1000, () => ({ query: '{ __typename }' }));
    console.log(`(b) no-op query:            ${fmt(noop.perSecond)} req/s  p50 ${fmt(noop.p50)} ms  p99 ${fmt(noop.p99)} ms`);
    c = await httpLoad(batched.url, CONCURRENCY, SECONDS * 1000, classify);
    console.log(`(c) classify, batching on:  ${fmt(c.perSecond)} req/s  p50 ${fmt(c.p50)} ms  p99 ${fmt(c.p99)} ms  errors ${c.errors}`);
  } finally {
    await batched.stop();
  }

  // (d) batching off.
  const single = await startServerProcess({ MODELS_DIR: join(ROOT, 'models'), MAX_BATCH_SIZE: '1' });
  let d;
  try {
    await httpLoad(single.url, CONCURRENCY, 1000, classify);
    d = await httpLoad(single.url, CONCURRENCY, SECONDS * 1000, classify);
    console.log(`(d) classify, batch size 1: ${fmt(d.perSecond)} req/s  p50 ${fmt(d.p50)} ms  p99 ${fmt(d.p99)} ms  errors ${d.errors}`);
  } finally {
    await single.stop();
  }

  const ceiling = Math.min(bestRaw, noop.perSecond);
  console.log('');
  console.log(`c/d             = ${fmt(c.perSecond / d.perSecond, 2)}x   (goal ≥ 0.8 × raw gain ${fmt(rawGain, 2)}x = ${fmt(0.8 * rawGain, 2)}x)`);
  console.log(`c/min(a, b)     = ${fmt(c.perSecond / ceiling, 2)}    (goal ≥ 0.8; min(a_best ${fmt(bestRaw)}, b ${fmt(noop.perSecond)}) = ${fmt(ceiling)})`);
}

await main();
