// The three shipped models load in onnxruntime-node, and batching does not change their outputs.
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { MODELS, emptyPast, int64, lastLogits, lmConfig, maxAbsDiff, modelPath, presentsAsPast, readJson } from './lm.js';

const TOLERANCE = 1e-5;

const argmaxRows = (data: Float32Array, cols: number) =>
  Array.from({ length: data.length / cols }, (_, r) => {
    const row = data.subarray(r * cols, (r + 1) * cols);
    return row.indexOf(Math.max(...row));
  });

// Held-out images (the 20% test split of tools/train_digits.py) from scikit-learn's load_digits: [index, label, pixels].
const DIGITS: [number, number, number[]][] = [
  [386, 0, [0, 0, 9, 15, 5, 0, 0, 0, 0, 3, 15, 15, 16, 4, 0, 0, 0, 10, 14, 0, 9, 14, 0, 0, 0, 8, 12, 0, 0, 12, 5, 0, 0, 8, 8, 0, 0, 10, 8, 0, 0, 5, 14, 0, 0, 12, 8, 0, 0, 0, 16, 7, 12, 16, 4, 0, 0, 0, 9, 16, 15, 7, 0, 0]],
  [442, 1, [0, 0, 7, 10, 0, 0, 0, 0, 0, 0, 9, 16, 0, 0, 0, 0, 0, 0, 6, 16, 5, 0, 0, 0, 0, 0, 9, 16, 9, 0, 0, 0, 0, 0, 0, 6, 14, 1, 0, 0, 0, 0, 0, 2, 16, 4, 0, 0, 0, 0, 1, 4, 14, 12, 4, 1, 0, 0, 7, 16, 16, 16, 16, 5]],
  [1466, 2, [0, 1, 15, 15, 2, 0, 0, 0, 0, 7, 14, 13, 9, 0, 0, 0, 0, 9, 9, 6, 13, 0, 0, 0, 0, 1, 0, 8, 12, 0, 0, 0, 0, 0, 0, 8, 12, 0, 0, 0, 0, 0, 0, 11, 6, 0, 0, 0, 0, 0, 7, 16, 16, 16, 7, 0, 0, 0, 16, 15, 12, 12, 3, 0]],
  [705, 3, [0, 0, 6, 14, 16, 16, 2, 0, 0, 5, 16, 13, 11, 16, 0, 0, 0, 0, 7, 2, 15, 12, 0, 0, 0, 0, 0, 7, 16, 13, 1, 0, 0, 0, 0, 0, 6, 15, 10, 0, 0, 0, 0, 0, 0, 15, 9, 0, 0, 0, 3, 11, 8, 16, 6, 0, 0, 0, 7, 16, 16, 8, 0, 0]],
  [1221, 4, [0, 0, 0, 1, 14, 5, 0, 0, 0, 0, 0, 11, 11, 0, 0, 0, 0, 0, 9, 12, 1, 0, 0, 0, 0, 5, 15, 1, 0, 2, 4, 0, 0, 14, 7, 0, 0, 13, 10, 0, 0, 15, 16, 16, 16, 16, 5, 0, 0, 3, 8, 8, 15, 10, 0, 0, 0, 0, 0, 3, 15, 2, 0, 0]],
  [1319, 5, [0, 2, 16, 16, 16, 16, 3, 0, 0, 1, 16, 13, 6, 4, 0, 0, 0, 9, 16, 3, 0, 0, 0, 0, 0, 9, 16, 13, 7, 0, 0, 0, 0, 3, 11, 13, 16, 9, 0, 0, 0, 0, 0, 0, 7, 16, 1, 0, 0, 2, 11, 5, 12, 14, 0, 0, 0, 3, 16, 16, 16, 5, 0, 0]],
  [188, 6, [0, 0, 4, 14, 6, 0, 0, 0, 0, 0, 10, 15, 2, 0, 0, 0, 0, 0, 16, 11, 0, 0, 0, 0, 0, 0, 13, 11, 0, 0, 0, 0, 0, 3, 16, 12, 8, 3, 0, 0, 0, 2, 16, 14, 8, 12, 9, 0, 0, 0, 16, 13, 4, 12, 12, 0, 0, 0, 6, 15, 16, 12, 1, 0]],
  [1496, 7, [0, 0, 2, 13, 16, 9, 0, 0, 0, 0, 12, 12, 7, 16, 3, 0, 0, 1, 14, 3, 0, 16, 4, 0, 0, 0, 0, 4, 10, 16, 6, 0, 0, 0, 0, 13, 16, 16, 9, 0, 0, 0, 0, 5, 13, 1, 0, 0, 0, 0, 0, 11, 9, 0, 0, 0, 0, 0, 1, 16, 4, 0, 0, 0]],
  [500, 8, [0, 0, 3, 10, 14, 3, 0, 0, 0, 8, 16, 11, 10, 13, 0, 0, 0, 7, 14, 0, 1, 15, 2, 0, 0, 2, 16, 9, 16, 16, 1, 0, 0, 0, 12, 16, 15, 15, 2, 0, 0, 0, 12, 10, 0, 8, 8, 0, 0, 0, 9, 12, 4, 7, 12, 0, 0, 0, 2, 11, 16, 16, 9, 0]],
  [254, 9, [0, 0, 3, 12, 5, 0, 0, 0, 0, 1, 15, 14, 16, 6, 0, 0, 0, 6, 16, 0, 6, 16, 6, 0, 0, 5, 16, 11, 14, 16, 4, 0, 0, 0, 8, 10, 12, 16, 0, 0, 0, 0, 1, 1, 7, 15, 1, 0, 0, 0, 8, 10, 10, 16, 2, 0, 0, 0, 2, 13, 14, 7, 0, 0]],
];

describe('digits', () => {
  let session: ort.InferenceSession;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(modelPath('digits'));
  });

  const pixels = (rows: number[][]) => new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, 64]);
  // Hand-made inputs: blank, saturated, a vertical bar (a "1"), a ring (a "0"), and sklearn samples.
  const bar = Array.from({ length: 64 }, (_, i) => (i % 8 === 3 || i % 8 === 4 ? 16 : 0));
  const ring = Array.from({ length: 64 }, (_, i) => {
    const [r, c] = [Math.floor(i / 8), i % 8];
    return (r === 1 || r === 6) && c >= 2 && c <= 5 ? 16 : (c === 1 || c === 6) && r >= 2 && r <= 5 ? 16 : 0;
  });
  const inputs = [new Array(64).fill(0), new Array(64).fill(16), bar, ring, ...DIGITS.map(([, , p]) => p)];

  it('has the documented I/O', () => {
    expect(session.inputNames).toEqual(['pixels']);
    expect(session.outputNames).toEqual(['logits']);
    const labels = readJson(join(MODELS, 'digits', 'inferql.json')).labels;
    expect(labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  it('gives the same logits batched as one by one, and stable argmaxes', async () => {
    const batched = (await session.run({ pixels: pixels(inputs) })).logits as ort.Tensor;
    expect(batched.type).toBe('float32');
    expect(batched.dims).toEqual([inputs.length, 10]);
    const data = batched.data as Float32Array;
    for (let i = 0; i < inputs.length; i++) {
      const single = (await session.run({ pixels: pixels([inputs[i]]) })).logits as ort.Tensor;
      expect(single.dims).toEqual([1, 10]);
      expect(maxAbsDiff(single.data as Float32Array, data.subarray(i * 10, (i + 1) * 10))).toBeLessThan(TOLERANCE);
    }
    const again = (await session.run({ pixels: pixels(inputs) })).logits as ort.Tensor;
    expect(argmaxRows(again.data as Float32Array, 10)).toEqual(argmaxRows(data, 10));
    expect(argmaxRows(data, 10)[2]).toBe(1); // the bar reads as a one
  });

  it('classifies held-out sklearn digits (raw 0-16 pixels)', async () => {
    const out = (await session.run({ pixels: pixels(DIGITS.map(([, , p]) => p)) })).logits as ort.Tensor;
    const predicted = argmaxRows(out.data as Float32Array, 10);
    const correct = predicted.filter((p, i) => p === DIGITS[i][1]).length;
    expect(correct).toBeGreaterThanOrEqual(9);
  });
});

describe('fortune-topic', () => {
  let session: ort.InferenceSession;
  let tokenizer: Tokenizer;
  let labels: string[];
  beforeAll(async () => {
    session = await ort.InferenceSession.create(modelPath('fortune-topic'));
    const dir = join(MODELS, 'fortune-topic');
    tokenizer = new Tokenizer(readJson(join(dir, 'tokenizer.json')), readJson(join(dir, 'tokenizer_config.json')));
    labels = readJson(join(dir, 'inferql.json')).labels;
  });

  const QUOTES = [
    'The computer is down. Reboot it and try again.',
    'Politicians are the same all over. They promise to build a bridge even where there is no river.',
    'Love is blind.',
    'Work expands so as to fill the time available for its completion.',
    'A scientist is a person who knows more and more about less and less.',
    'Are we having fun yet?',
  ];

  async function run(rows: number[][]) {
    const width = Math.max(...rows.map((r) => r.length));
    const ids = rows.flatMap((r) => [...r, ...new Array(width - r.length).fill(0)]);
    const mask = rows.flatMap((r) => [...new Array(r.length).fill(1), ...new Array(width - r.length).fill(0)]);
    const out = await session.run({ input_ids: int64(ids, [rows.length, width]), attention_mask: int64(mask, [rows.length, width]) });
    return out.logits as ort.Tensor;
  }

  it('has the documented I/O and labels', () => {
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask']);
    expect(session.outputNames).toEqual(['logits']);
    expect(labels.length).toBeGreaterThanOrEqual(6);
    expect(labels.length).toBeLessThanOrEqual(10);
  });

  it('gives the same logits for ragged right-padded batches as one by one', async () => {
    const rows = QUOTES.map((q) => tokenizer.encode(q).ids);
    expect(new Set(rows.map((r) => r.length)).size).toBeGreaterThan(3);
    const batched = await run(rows);
    expect(batched.type).toBe('float32');
    expect(batched.dims).toEqual([rows.length, labels.length]);
    const data = batched.data as Float32Array;
    for (let i = 0; i < rows.length; i++) {
      const single = await run([rows[i]]);
      expect(maxAbsDiff(single.data as Float32Array, data.subarray(i * labels.length, (i + 1) * labels.length))).toBeLessThan(TOLERANCE);
    }
    // Extra padding at the end changes nothing either.
    const padded = await run([...rows, [...rows[0], ...new Array(40).fill(0)]]);
    expect(maxAbsDiff((padded.data as Float32Array).subarray(0, labels.length), data.subarray(0, labels.length))).toBeLessThan(TOLERANCE);
  });

  it('accepts long inputs and batch sizes up to the configured maximum', async () => {
    const long = tokenizer.encode(QUOTES.join(' ').repeat(3)).ids;
    expect(long.length).toBeGreaterThan(128);
    expect((await run([long])).dims).toEqual([1, labels.length]);
    const rows = Array.from({ length: 64 }, (_, i) => tokenizer.encode(QUOTES[i % QUOTES.length]).ids);
    expect((await run(rows)).dims).toEqual([64, labels.length]);
  });
});

describe('fortune-lm', () => {
  const cfg = lmConfig();
  let session: ort.InferenceSession;
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(modelPath('fortune-lm'));
    const dir = join(MODELS, 'fortune-lm');
    tokenizer = new Tokenizer(readJson(join(dir, 'tokenizer.json')), readJson(join(dir, 'tokenizer_config.json')));
  });

  it('has the decoder-with-past I/O', () => {
    const layers = Array.from({ length: cfg.num_hidden_layers }, (_, i) => i);
    expect(session.inputNames).toEqual([
      'input_ids', 'attention_mask', 'position_ids',
      ...layers.flatMap((i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]),
    ]);
    expect(session.outputNames).toEqual(['logits', ...layers.flatMap((i) => [`present.${i}.key`, `present.${i}.value`])]);
  });

  it('gives the same logits for a left-padded batch (empty past) as one by one', async () => {
    const rows: number[][] = ['The meaning of life is', 'A computer', 'Never trust a man who'].map((t) => tokenizer.encode(t).ids);
    const width = Math.max(...rows.map((r) => r.length));
    const ids: number[] = [];
    const mask: number[] = [];
    const pos: number[] = [];
    for (const r of rows) {
      const pad = width - r.length;
      ids.push(...new Array(pad).fill(0), ...r);
      mask.push(...new Array(pad).fill(0), ...new Array(r.length).fill(1));
      pos.push(...new Array(pad).fill(1), ...r.map((_, i) => i)); // cumsum(mask) - 1, padding at 1
    }
    const out = await session.run({
      input_ids: int64(ids, [rows.length, width]),
      attention_mask: int64(mask, [rows.length, width]),
      position_ids: int64(pos, [rows.length, width]),
      ...emptyPast(cfg, rows.length),
    });
    const logits = out.logits as ort.Tensor;
    expect(logits.dims).toEqual([rows.length, width, cfg.vocab_size]);
    expect((out['present.0.key'] as ort.Tensor).dims).toEqual([rows.length, cfg.num_key_value_heads, width, cfg.head_dim]);
    for (let i = 0; i < rows.length; i++) {
      const single = await session.run({
        input_ids: int64(rows[i], [1, rows[i].length]),
        attention_mask: int64(new Array(rows[i].length).fill(1), [1, rows[i].length]),
        position_ids: int64(rows[i].map((_, j) => j), [1, rows[i].length]),
        ...emptyPast(cfg, 1),
      });
      expect(maxAbsDiff(lastLogits(single.logits as ort.Tensor), lastLogits(logits, i))).toBeLessThan(TOLERANCE);
    }
  });

  it('gives the same logits with the KV cache as without', async () => {
    const ids: number[] = tokenizer.encode('Whenever you find yourself on the side of the majority').ids;
    const k = 4;
    const ones = (n: number) => int64(new Array(n).fill(1), [1, n]);
    const full = await session.run({
      input_ids: int64(ids, [1, ids.length]), attention_mask: ones(ids.length),
      position_ids: int64(ids.map((_, i) => i), [1, ids.length]), ...emptyPast(cfg, 1),
    });
    let out = await session.run({
      input_ids: int64(ids.slice(0, k), [1, k]), attention_mask: ones(k),
      position_ids: int64([0, 1, 2, 3], [1, k]), ...emptyPast(cfg, 1),
    });
    for (let t = k; t < ids.length; t++) {
      out = await session.run({
        input_ids: int64([ids[t]], [1, 1]), attention_mask: ones(t + 1),
        position_ids: int64([t], [1, 1]), ...presentsAsPast(cfg, out),
      });
      expect((out['present.0.value'] as ort.Tensor).dims[2]).toBe(t + 1);
    }
    expect(maxAbsDiff(lastLogits(out.logits as ort.Tensor), lastLogits(full.logits as ort.Tensor))).toBeLessThan(TOLERANCE);
  });
});
