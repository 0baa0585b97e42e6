// Helpers for the model tests: paths, and a plain onnxruntime-node greedy loop with a KV cache.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';

export const MODELS = resolve(dirname(fileURLToPath(import.meta.url)), '../../models');
export const modelPath = (name: string) => join(MODELS, name, 'onnx', 'model.onnx');
export const readJson = (path: string): any => JSON.parse(readFileSync(path, 'utf8'));

export const int64 = (values: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);

export interface LmConfig {
  num_hidden_layers: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  eos_token_id: number;
  bos_token_id: number;
  pad_token_id: number;
}

export const lmConfig = (): LmConfig => readJson(join(MODELS, 'fortune-lm', 'config.json'));

/** An empty past: [batch, kv_heads, 0, head_dim] for every layer. */
export function emptyPast(cfg: LmConfig, batch: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [batch, cfg.num_key_value_heads, 0, cfg.head_dim]);
    }
  }
  return feeds;
}

export function presentsAsPast(cfg: LmConfig, out: ort.InferenceSession.OnnxValueMapType): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = out[`present.${i}.${kind}`] as ort.Tensor;
  }
  return feeds;
}

/** Logits of the last position of row `row` of a [batch, seq, vocab] tensor. */
export function lastLogits(logits: ort.Tensor, row = 0): Float32Array {
  const [, seq, vocab] = logits.dims as number[];
  const data = logits.data as Float32Array;
  const start = (row * seq + seq - 1) * vocab;
  return data.slice(start, start + vocab);
}

const argmax = (xs: Float32Array) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/**
 * Greedy decoding with the KV cache: the prompt in one step with an empty past, then one token at a time.
 * With `repetitionPenalty` != 1 every token already in the sequence (prompt included) is penalised the
 * Hugging Face way (positive logits divided, negative ones multiplied). Returns prompt + new ids, stopping after EOS.
 */
export async function greedy(session: ort.InferenceSession, cfg: LmConfig, prompt: number[], maxNewTokens: number, repetitionPenalty = 1): Promise<number[]> {
  const ids = [...prompt];
  let past = emptyPast(cfg, 1);
  let step = prompt;
  for (let n = 0; n < maxNewTokens; n++) {
    const total = ids.length;
    const out = await session.run({
      input_ids: int64(step, [1, step.length]),
      attention_mask: int64(new Array(total).fill(1), [1, total]),
      position_ids: int64(step.map((_, i) => total - step.length + i), [1, step.length]),
      ...past,
    });
    const scores = lastLogits(out.logits as ort.Tensor);
    if (repetitionPenalty !== 1) {
      for (const t of new Set(ids)) scores[t] = scores[t] > 0 ? scores[t] / repetitionPenalty : scores[t] * repetitionPenalty;
    }
    const next = argmax(scores);
    ids.push(next);
    if (next === cfg.eos_token_id) break;
    past = presentsAsPast(cfg, out);
    step = [next];
  }
  return ids;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
