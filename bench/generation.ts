/**
 * Streaming generation on the shipped decoder (fortune-lm), measured in one run:
 *   (a) raw in-process decode loop (onnxruntime-node, greedy, KV cache) at batch 1 and 16,
 *   (b) transformers.js `generate()` (do_sample false) on the same files: the peer,
 *   (c) the engine in process (GenerationService, no transport): a diagnostic,
 *   (d) inferql, single stream over graphql-ws,
 *   (e) inferql, aggregate over graphql-ws at 4, 16 and 64 concurrent streams,
 *       with TTFT and inter-token latency p50/p99,
 * and the ratios against the goals. inferql runs as its own process (as an
 * operator would start it); every figure generates exactly TOKENS greedy
 * tokens a sequence from the same prompts (EOS off), prefill included.
 *
 * The machine may be shared, so the measurements run in ROUNDS interleaved
 * rounds after a warm-up round; within a round the two sides of each ratio
 * run back to back (raw b1 then 1 stream, raw b16 then 16 streams), each
 * ratio is taken within its round, and the median over rounds is reported.
 *
 * Run: npm run bench:generation   (BENCH_SECONDS=2 per measurement, BENCH_ROUNDS=3, BENCH_TOKENS=64)
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env } from '@huggingface/transformers';
import { createClient } from 'graphql-ws';
import ort from 'onnxruntime-node';
import WebSocket from 'ws';
import { configWith } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { TextTokenizer } from '../src/models/tokenizer.js';
import { createServices } from '../src/services.js';
import { fmt, percentile, ROOT, startServerProcess } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
const MODEL = 'fortune-lm';
const BATCH_LIMIT = 16;
const MODEL_DIR = join(ROOT, 'models', MODEL);

const PROMPTS = [
  'The meaning of life is',
  'A computer',
  'Love is',
  'Never trust a',
  'The best way to',
  'Why do',
  'In the beginning',
  'I have always',
  'Fortune favors',
  'You will meet',
  'There is no',
  'A wise man',
  'Today is',
  'Your lucky number',
  'Beware of',
  'All that glitters',
];

const GREEDY = { temperature: 0, repetitionPenalty: 1, maxTokens: TOKENS };

interface LmConfig {
  num_hidden_layers: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
}

// ---------------------------------------------------------------- (a) raw loop

/**
 * The plainest decode loop onnxruntime allows: one left-padded prefill for
 * the batch, then one session.run per token for every row, present → past,
 * argmax. Returns tokens/s and the mean decode step time.
 */
async function rawLoop(session: ort.InferenceSession, config: LmConfig, prompts: number[][], batch: number) {
  const { num_hidden_layers: layers, num_key_value_heads: heads, head_dim: dim } = config;
  const rows = Array.from({ length: batch }, (_, r) => prompts[r % prompts.length]!);
  const int64 = (data: BigInt64Array, dims: number[]) => new ort.Tensor('int64', data, dims);
  const generateOnce = async (): Promise<{ tokens: number; decodeMs: number; steps: number }> => {
    const width = Math.max(...rows.map((p) => p.length));
    const ids = new BigInt64Array(batch * width);
    const mask = new BigInt64Array(batch * width);
    const pos = new BigInt64Array(batch * width).fill(1n);
    rows.forEach((p, r) => {
      const pad = width - p.length;
      p.forEach((id, k) => {
        ids[r * width + pad + k] = BigInt(id);
        mask[r * width + pad + k] = 1n;
        pos[r * width + pad + k] = BigInt(k);
      });
    });
    const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids, [batch, width]), attention_mask: int64(mask, [batch, width]), position_ids: int64(pos, [batch, width]) };
    for (let i = 0; i < layers; i++) {
      for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [batch, heads, 0, dim]);
    }
    let out = await session.run(feeds);
    let logits = out.logits!;
    const next = new BigInt64Array(batch);
    const lengths = rows.map((p) => p.length);
    let seq = logits.dims[1]!;
    let past = width;
    const choose = () => {
      const vocab = logits.dims[2]!;
      const data = logits.data as Float32Array;
      for (let r = 0; r < batch; r++) {
        const at = (r * seq + seq - 1) * vocab;
        let best = 0;
        for (let v = 1; v < vocab; v++) if (data[at + v]! > data[at + best]!) best = v;
        next[r] = BigInt(best);
      }
    };
    choose();
    const t0 = performance.now();
    for (let step = 1; step < TOKENS; step++) {
      const total = past + 1;
      const m = new BigInt64Array(batch * total);
      for (let r = 0; r < batch; r++) m.fill(1n, r * total + (past - lengths[r]!), (r + 1) * total);
      const f: Record<string, ort.Tensor> = {
        input_ids: int64(next, [batch, 1]),
        attention_mask: int64(m, [batch, total]),
        position_ids: int64(BigInt64Array.from(lengths, BigInt), [batch, 1]),
      };
      for (let i = 0; i < layers; i++) {
        f[`past_key_values.${i}.key`] = out[`present.${i}.key`]!;
        f[`past_key_values.${i}.value`] = out[`present.${i}.value`]!;
      }
      out = await session.run(f);
      logits = out.logits!;
      seq = 1;
      past++;
      for (let r = 0; r < batch; r++) lengths[r]!++;
      choose();
    }
    return { tokens: batch * TOKENS, decodeMs: performance.now() - t0, steps: TOKENS - 1 };
  };
  await generateOnce(); // warm-up
  let tokens = 0;
  let decodeMs = 0;
  let steps = 0;
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    const run = await generateOnce();
    tokens += run.tokens;
    decodeMs += run.decodeMs;
    steps += run.steps;
  }
  return { perSecond: (tokens / (performance.now() - start)) * 1000, stepMs: decodeMs / steps };
}

// ---------------------------------------------------------- (b) transformers.js

async function loadTransformersJs() {
  env.allowRemoteModels = false;
  env.localModelPath = `${join(ROOT, 'models')}/`;
  const tokenizer = await AutoTokenizer.from_pretrained(MODEL);
  const model = await AutoModelForCausalLM.from_pretrained(MODEL, { dtype: 'fp32' });
  const once = async (prompt: string) => {
    const inputs = tokenizer(prompt);
    await model.generate({ ...inputs, max_new_tokens: TOKENS, min_new_tokens: TOKENS, do_sample: false, repetition_penalty: 1.0 });
    return TOKENS;
  };
  await once(PROMPTS[0]!);
  return {
    async measure(): Promise<number> {
      let tokens = 0;
      let i = 0;
      const start = performance.now();
      while (performance.now() - start < SECONDS * 1000) tokens += await once(PROMPTS[i++ % PROMPTS.length]!);
      return (tokens / (performance.now() - start)) * 1000;
    },
    dispose: () => model.dispose(),
  };
}

// ------------------------------------------------------ (c) engine in process

async function startEngineInProcess(modelsDir: string) {
  const config = configWith({ modelsDir, dataDir: mkdtempSync(join(tmpdir(), 'inferql-bench-')), logLevel: 'silent', maxRunningSequences: BATCH_LIMIT });
  const services = await createServices(config, createLogger('silent'));
  await services.generation.generate(MODEL, PROMPTS[0]!, GREEDY);
  return {
    async measure(): Promise<number> {
      let tokens = 0;
      let i = 0;
      const start = performance.now();
      while (performance.now() - start < SECONDS * 1000) {
        const result = await services.generation.generate(MODEL, PROMPTS[i++ % PROMPTS.length]!, GREEDY);
        tokens += result.usage.completionTokens;
      }
      return (tokens / (performance.now() - start)) * 1000;
    },
    close: () => services.close(),
  };
}

// ------------------------------------------------------- (d, e) over graphql-ws

const STREAM = `subscription ($prompt: String!, $params: GenerationParams) {
  generate(model: "${MODEL}", prompt: $prompt, params: $params) { index text finishReason }
}`;

interface StreamLoad {
  perSecond: number;
  streams: number;
  ttft: number[];
  itl: number[];
}

/** `concurrency` clients on one WebSocket each open streams back to back for SECONDS. */
async function streamLoad(url: string, concurrency: number): Promise<StreamLoad> {
  const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  const one = (prompt: string, ttft: number[], itl: number[]) =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      let last = 0;
      let count = 0;
      client.subscribe<{ generate: { index: number } }>(
        { query: STREAM, variables: { prompt, params: GREEDY } },
        {
          next: (value) => {
            if (value.errors) return reject(new Error(JSON.stringify(value.errors)));
            const now = performance.now();
            if (count === 0) ttft.push(now - t0);
            else itl.push(now - last);
            last = now;
            count++;
          },
          error: reject,
          complete: () => resolve(count),
        },
      );
    });
  try {
    // Warm-up: open the socket, prefill each prompt length once.
    await Promise.all(PROMPTS.slice(0, Math.min(concurrency, PROMPTS.length)).map((p) => one(p, [], [])));
    const ttft: number[] = [];
    const itl: number[] = [];
    let tokens = 0;
    let streams = 0;
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() - start < SECONDS * 1000) {
          // (Not `tokens += await …`: that reads `tokens` before the await and loses other clients' counts.)
          const count = await one(PROMPTS[next++ % PROMPTS.length]!, ttft, itl);
          tokens += count;
          streams++;
        }
      }),
    );
    const perSecond = (tokens / (performance.now() - start)) * 1000;
    ttft.sort((a, b) => a - b);
    itl.sort((a, b) => a - b);
    return { perSecond, streams, ttft, itl };
  } finally {
    await client.dispose();
  }
}

// ----------------------------------------------------------------------- main

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

interface Round {
  raw1: number;
  raw16: number;
  /** The raw loop with the decode worker's session settings (half the cores for intra-op threads). */
  raw1w: number;
  raw16w: number;
  step1: number;
  step16: number;
  peer: number;
  engine: number;
  loads: Record<number, StreamLoad>;
}

const CONCURRENCY = [1, 4, 16, 64];

async function main() {
  const config = JSON.parse(readFileSync(join(MODEL_DIR, 'config.json'), 'utf8')) as LmConfig;
  const tokenizer = await TextTokenizer.load(join(MODEL_DIR, 'tokenizer.json'), join(MODEL_DIR, 'tokenizer_config.json'));
  const encoded = PROMPTS.map((p) => tokenizer.encode(p));
  console.log(
    `bench/generation: ${MODEL} (${config.num_hidden_layers} layers, vocab ${config.vocab_size}), ${PROMPTS.length} prompts of ` +
      `${Math.min(...encoded.map((e) => e.length))}–${Math.max(...encoded.map((e) => e.length))} tokens, ${TOKENS} greedy tokens a sequence, ` +
      `${SECONDS}s per measurement, ${ROUNDS} interleaved rounds\n`,
  );

  const onnx = join(MODEL_DIR, 'onnx', 'model.onnx');
  const session = await ort.InferenceSession.create(onnx, { graphOptimizationLevel: 'all', executionMode: 'sequential' });
  const workerThreads = Math.max(1, Math.floor(availableParallelism() / 2));
  const workerLike = await ort.InferenceSession.create(onnx, { graphOptimizationLevel: 'all', executionMode: 'sequential', intraOpNumThreads: workerThreads });
  const peer = await loadTransformersJs();
  const modelsDir = mkdtempSync(join(tmpdir(), 'inferql-bench-models-'));
  cpSync(MODEL_DIR, join(modelsDir, MODEL), { recursive: true });
  // inferql's copy never ends on EOS, so every stream is TOKENS long like the raw loop's and transformers.js's (min_new_tokens).
  for (const file of ['config.json', 'generation_config.json']) {
    const path = join(modelsDir, MODEL, file);
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), eos_token_id: -1 }));
  }
  const engine = await startEngineInProcess(modelsDir);
  const server = await startServerProcess({ MODELS_DIR: modelsDir, MAX_RUNNING_SEQUENCES: String(BATCH_LIMIT) });
  const rounds: Round[] = [];
  try {
    // Round 0 warms every path (JIT, onnxruntime's arenas, sockets) and is not counted.
    for (let r = -1; r < ROUNDS; r++) {
      // Each goal's pair runs back to back, so the background load is as alike as it gets.
      const loads: Record<number, StreamLoad> = {};
      const raw1 = await rawLoop(session, config, encoded, 1);
      const raw1w = await rawLoop(workerLike, config, encoded, 1);
      loads[1] = await streamLoad(server.url, 1);
      const peerRate = await peer.measure();
      const engineRate = await engine.measure();
      const raw16 = await rawLoop(session, config, encoded, BATCH_LIMIT);
      const raw16w = await rawLoop(workerLike, config, encoded, BATCH_LIMIT);
      loads[BATCH_LIMIT] = await streamLoad(server.url, BATCH_LIMIT);
      for (const concurrency of CONCURRENCY) loads[concurrency] ??= await streamLoad(server.url, concurrency);
      const round: Round = { raw1: raw1.perSecond, raw16: raw16.perSecond, raw1w: raw1w.perSecond, raw16w: raw16w.perSecond, step1: raw1.stepMs, step16: raw16.stepMs, peer: peerRate, engine: engineRate, loads };
      if (r < 0) continue;
      rounds.push(round);
      const l = round.loads;
      console.log(
        `round ${r + 1}: raw b1 ${fmt(round.raw1)}  raw b${BATCH_LIMIT} ${fmt(round.raw16)}  transformers.js ${fmt(round.peer)}  engine ${fmt(round.engine)}  ` +
          `ws ${CONCURRENCY.map((c) => `${c}:${fmt(l[c]!.perSecond)}`).join(' ')} tokens/s`,
      );
    }
  } finally {
    await server.stop();
    await engine.close();
    await peer.dispose();
    await session.release();
    await workerLike.release();
  }

  // Each figure: its median over the rounds; latencies: percentiles over every round.
  const pick = (key: (round: Round) => number) => median(rounds.map(key));
  console.log('');
  console.log(`(a) raw decode loop, batch  1: ${fmt(pick((x) => x.raw1))} tokens/s   (decode step ${fmt(pick((x) => x.step1), 3)} ms)`);
  console.log(`(a) raw decode loop, batch ${BATCH_LIMIT}: ${fmt(pick((x) => x.raw16))} tokens/s   (decode step ${fmt(pick((x) => x.step16), 3)} ms)`);
  console.log(
    `(a) same loop with the decode worker's settings (${workerThreads} intra-op thread${workerThreads > 1 ? 's' : ''}): ` +
      `batch 1 ${fmt(pick((x) => x.raw1w))}, batch ${BATCH_LIMIT} ${fmt(pick((x) => x.raw16w))} tokens/s`,
  );
  console.log(`(b) transformers.js generate(): ${fmt(pick((x) => x.peer))} tokens/s`);
  console.log(`(c) engine in process, 1 stream: ${fmt(pick((x) => x.engine))} tokens/s`);
  for (const concurrency of CONCURRENCY) {
    const ttft = rounds.flatMap((x) => x.loads[concurrency]!.ttft).sort((a, b) => a - b);
    const itl = rounds.flatMap((x) => x.loads[concurrency]!.itl).sort((a, b) => a - b);
    const label = concurrency === 1 ? '(d) inferql graphql-ws, 1 stream ' : `(e) inferql graphql-ws, ${String(concurrency).padStart(2)} streams`;
    console.log(
      `${label}: ${fmt(pick((x) => x.loads[concurrency]!.perSecond))} tokens/s  ` +
        `TTFT p50 ${fmt(percentile(ttft, 50), 2)} ms p99 ${fmt(percentile(ttft, 99), 2)} ms  ` +
        `ITL p50 ${fmt(percentile(itl, 50), 3)} ms p99 ${fmt(percentile(itl, 99), 3)} ms`,
    );
  }

  const line = (name: string, key: (round: Round) => number, goal: number) => {
    const values = rounds.map(key);
    const value = median(values);
    const verdict = goal > 0 ? `(goal ≥ ${goal}) ${value >= goal ? 'met' : 'NOT met'}` : '';
    console.log(`${name.padEnd(40)} = ${fmt(value, 2)}   ${verdict.padEnd(20)} rounds: ${values.map((v) => fmt(v, 2)).join(', ')}`);
  };
  console.log('');
  line('single stream / raw batch 1', (x) => x.loads[1]!.perSecond / x.raw1, 0.9);
  line('single stream / transformers.js', (x) => x.loads[1]!.perSecond / x.peer, 1.5);
  line(`${BATCH_LIMIT} streams / raw batch ${BATCH_LIMIT}`, (x) => x.loads[BATCH_LIMIT]!.perSecond / x.raw16, 0.8);
  console.log('diagnostics:');
  line('single stream / raw b1, worker settings', (x) => x.loads[1]!.perSecond / x.raw1w, 0.9);
  line(`${BATCH_LIMIT} streams / raw b${BATCH_LIMIT}, worker settings`, (x) => x.loads[BATCH_LIMIT]!.perSecond / x.raw16w, 0.8);
  line('transformers.js / raw batch 1', (x) => x.peer / x.raw1, 0);
  line('engine in process / raw batch 1', (x) => x.engine / x.raw1, 0);
}

await main();
