import ort from 'onnxruntime-node';
import type { ModelInstance } from '../models/instance.js';
import type { Feeds } from '../runtime/session.js';

/**
 * What the engine needs to know of a "decoder with past" export: names and
 * sizes of its KV cache, read from the session's I/O and config.json, so
 * Llama, Qwen2 and GPT-2-style exports with the same I/O drop in.
 */
export interface DecoderSpec {
  layers: number;
  kvHeads: number;
  headDim: number;
  pastNames: string[];
  presentNames: string[];
  hasPositionIds: boolean;
  cacheType: 'float32' | 'float16';
  eosIds: ReadonlySet<number>;
  padId: number;
  maxPositions: number;
  vocabSize: number;
}

function ids(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

/** Reads the decoder's layout; throws an Error (shown as the model's load error) if it is not a decoder with past. */
export function decoderSpec(instance: ModelInstance): DecoderSpec {
  const { session, manifest } = instance;
  const config = manifest.config ?? {};
  const names = session.inputs.map((s) => s.name);
  for (const required of ['input_ids', 'attention_mask']) {
    if (!names.includes(required)) throw new Error(`a decoder needs an "${required}" input`);
  }
  const pastNames = names.filter((n) => /^past_key_values\.\d+\.(key|value)$/.test(n));
  if (pastNames.length === 0) throw new Error('a decoder needs past_key_values.{i}.key|value inputs (export with past)');
  const layers = pastNames.length / 2;
  const presentNames = pastNames.map((n) => n.replace('past_key_values', 'present'));
  const outputs = new Set(session.outputs.map((s) => s.name));
  for (const n of ['logits', ...presentNames]) if (!outputs.has(n)) throw new Error(`a decoder needs a "${n}" output`);
  const past = session.input(pastNames[0]!)!;
  const kvHeads = past.shape[1] ?? (config.num_key_value_heads as number) ?? (config.num_attention_heads as number);
  const headDim = past.shape[3] ?? (config.head_dim as number) ?? (config.hidden_size as number) / (config.num_attention_heads as number);
  if (!Number.isInteger(kvHeads) || !Number.isInteger(headDim)) throw new Error('cannot tell the KV cache shape from the model or config.json');
  const generation = manifest.generationConfig ?? {};
  const eos = new Set([...ids(config.eos_token_id), ...ids(generation.eos_token_id)]);
  return {
    layers,
    kvHeads,
    headDim,
    pastNames,
    presentNames,
    hasPositionIds: names.includes('position_ids'),
    cacheType: past.datatype === 'FP16' ? 'float16' : 'float32',
    eosIds: eos,
    padId: ids(config.pad_token_id)[0] ?? ids(generation.pad_token_id)[0] ?? 0,
    maxPositions: (config.max_position_embeddings as number) ?? (config.n_positions as number) ?? 2048,
    vocabSize: (config.vocab_size as number) ?? 0,
  };
}

const int64 = (values: ArrayLike<number>, dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values as number[], BigInt), dims);

function cacheArray(spec: DecoderSpec, length: number): Float32Array | Uint16Array {
  return spec.cacheType === 'float16' ? new Uint16Array(length) : new Float32Array(length);
}

export function emptyCache(spec: DecoderSpec, batch: number): ort.Tensor[] {
  return spec.pastNames.map(() => new ort.Tensor(spec.cacheType, cacheArray(spec, 0) as Float32Array, [batch, spec.kvHeads, 0, spec.headDim]));
}

/**
 * Prefill feeds for prompts of different lengths: left-padded, attention mask
 * 0 on padding, position ids `cumsum(mask) - 1` with padded positions 1 (as
 * Hugging Face does), an empty past.
 */
export function prefillFeeds(spec: DecoderSpec, prompts: readonly (readonly number[])[]): Feeds {
  const n = prompts.length;
  const width = Math.max(...prompts.map((p) => p.length));
  const inputIds = new Array<number>(n * width).fill(spec.padId);
  const mask = new Array<number>(n * width).fill(0);
  const positions = new Array<number>(n * width).fill(1);
  prompts.forEach((p, r) => {
    const pad = width - p.length;
    p.forEach((id, k) => {
      inputIds[r * width + pad + k] = id;
      mask[r * width + pad + k] = 1;
      positions[r * width + pad + k] = k;
    });
  });
  const feeds: Feeds = { input_ids: int64(inputIds, [n, width]), attention_mask: int64(mask, [n, width]) };
  if (spec.hasPositionIds) feeds.position_ids = int64(positions, [n, width]);
  emptyCache(spec, n).forEach((t, i) => (feeds[spec.pastNames[i]!] = t));
  return feeds;
}

/** One decode step's feeds: each row's next token, its mask over a cache of width `width`, its position. */
export function decodeFeeds(spec: DecoderSpec, tokens: readonly number[], lengths: readonly number[], width: number, cache: readonly ort.Tensor[]): Feeds {
  const n = tokens.length;
  const total = width + 1;
  const mask = new BigInt64Array(n * total);
  lengths.forEach((len, r) => mask.fill(1n, r * total + (width - len), (r + 1) * total));
  const feeds: Feeds = { input_ids: int64(tokens, [n, 1]), attention_mask: new ort.Tensor('int64', mask, [n, total]) };
  if (spec.hasPositionIds) feeds.position_ids = int64(lengths, [n, 1]);
  cache.forEach((t, i) => (feeds[spec.pastNames[i]!] = t));
  return feeds;
}

/** Where one row's cache lives: row `row` of tensors whose time axis is `width` wide; its real tokens are the last `length`. */
export interface CacheSlice {
  tensors: readonly ort.Tensor[];
  row: number;
  width: number;
  length: number;
}

/**
 * Builds a batch cache from rows that live in different tensors (the running
 * batch, fresh prefills): each row's real positions are copied right-aligned
 * into a new cache as wide as the longest row, so padding stays on the left
 * and columns that are padding for every row are dropped.
 */
export function gatherCache(spec: DecoderSpec, rows: readonly CacheSlice[]): { tensors: ort.Tensor[]; width: number } {
  const width = Math.max(0, ...rows.map((r) => r.length));
  const { kvHeads: heads, headDim } = spec;
  const tensors = spec.pastNames.map((_, layer) => {
    const out = cacheArray(spec, rows.length * heads * width * headDim);
    rows.forEach((slice, b) => {
      const src = slice.tensors[layer]!.data as Float32Array;
      for (let h = 0; h < heads; h++) {
        const from = ((slice.row * heads + h) * slice.width + (slice.width - slice.length)) * headDim;
        const to = ((b * heads + h) * width + (width - slice.length)) * headDim;
        out.set(src.subarray(from, from + slice.length * headDim), to);
      }
    });
    return new ort.Tensor(spec.cacheType, out as Float32Array, [rows.length, heads, width, headDim]);
  });
  return { tensors, width };
}
