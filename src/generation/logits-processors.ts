import type { SamplingConfig } from './params.js';

/**
 * Logits processors in the manner of transformers.js: each is a small object
 * with one method that edits one row of scores in place, given the tokens so
 * far; a list applies them in order; one factory builds the list.
 */
export interface LogitsProcessor {
  process(scores: Float32Array, history: TokenHistory): void;
}

/** What a sequence has seen: every token id (prompt and output), and how often each was generated. */
export interface TokenHistory {
  seen: ReadonlySet<number>;
  generated: ReadonlyMap<number, number>;
}

/** Divides positive scores and multiplies negative ones of tokens seen before (CTRL / Hugging Face). */
export class RepetitionPenalty implements LogitsProcessor {
  constructor(private readonly penalty: number) {}
  process(scores: Float32Array, history: TokenHistory): void {
    for (const id of history.seen) {
      const s = scores[id]!;
      scores[id] = s > 0 ? s / this.penalty : s * this.penalty;
    }
  }
}

/** OpenAI-style: subtract presence once per seen token and frequency per occurrence (generated tokens only). */
export class PresenceFrequencyPenalty implements LogitsProcessor {
  constructor(
    private readonly presence: number,
    private readonly frequency: number,
  ) {}
  process(scores: Float32Array, history: TokenHistory): void {
    for (const [id, count] of history.generated) scores[id] = scores[id]! - this.presence - this.frequency * count;
  }
}

export class Temperature implements LogitsProcessor {
  constructor(private readonly temperature: number) {}
  process(scores: Float32Array): void {
    for (let i = 0; i < scores.length; i++) scores[i] = scores[i]! / this.temperature;
  }
}

/** Keeps the k best scores (and any tied with the k-th, as Hugging Face does). */
export class TopK implements LogitsProcessor {
  private readonly heap: Float32Array;

  constructor(private readonly k: number) {
    this.heap = new Float32Array(k);
  }

  process(scores: Float32Array): void {
    if (this.k >= scores.length) return;
    const threshold = kthLargest(scores, this.k, this.heap);
    for (let i = 0; i < scores.length; i++) if (scores[i]! < threshold) scores[i] = Number.NEGATIVE_INFINITY;
  }
}

/** The k-th largest value, with a size-k min-heap: O(n log k), no sort of the vocabulary. */
function kthLargest(values: Float32Array, k: number, heap: Float32Array): number {
  let size = 0;
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && heap[l]! < heap[m]!) m = l;
      if (r < size && heap[r]! < heap[m]!) m = r;
      if (m === i) return;
      const t = heap[i]!;
      heap[i] = heap[m]!;
      heap[m] = t;
      i = m;
    }
  };
  for (let n = 0; n < values.length; n++) {
    const v = values[n]!;
    if (size < k) {
      let i = size++;
      heap[i] = v;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent]! <= heap[i]!) break;
        const t = heap[i]!;
        heap[i] = heap[parent]!;
        heap[parent] = t;
        i = parent;
      }
    } else if (v > heap[0]!) {
      heap[0] = v;
      down(0);
    }
  }
  return heap[0]!;
}

/**
 * Keeps the smallest set of best tokens whose probability reaches p (always
 * at least one). Only tokens still in play are sorted: after top-k, a few dozen.
 */
export class TopP implements LogitsProcessor {
  constructor(private readonly p: number) {}
  process(scores: Float32Array): void {
    let max = Number.NEGATIVE_INFINITY;
    let live = 0;
    for (let i = 0; i < scores.length; i++) {
      const s = scores[i]!;
      if (s > Number.NEGATIVE_INFINITY) live++;
      if (s > max) max = s;
    }
    if (live <= 1) return;
    const weights = new Float64Array(live);
    let sum = 0;
    for (let i = 0, j = 0; i < scores.length; i++) {
      if (scores[i]! > Number.NEGATIVE_INFINITY) sum += weights[j++] = Math.exp(scores[i]! - max);
    }
    weights.sort().reverse();
    const target = this.p * sum;
    let total = 0;
    let cut = weights[weights.length - 1]!;
    for (const w of weights) {
      total += w;
      if (total >= target) {
        cut = w;
        break;
      }
    }
    // Ties with the last kept token stay, as they would in any sort order.
    const floor = max + Math.log(cut);
    for (let i = 0; i < scores.length; i++) if (scores[i]! < floor && Math.exp(scores[i]! - max) < cut) scores[i] = Number.NEGATIVE_INFINITY;
  }
}

/** Drops tokens whose probability is below minP × the best token's: p_i < minP·p_max ⇔ s_i < s_max + ln(minP). */
export class MinP implements LogitsProcessor {
  constructor(private readonly minP: number) {}
  process(scores: Float32Array): void {
    let max = Number.NEGATIVE_INFINITY;
    for (const s of scores) if (s > max) max = s;
    const floor = max + Math.log(this.minP);
    for (let i = 0; i < scores.length; i++) if (scores[i]! < floor) scores[i] = Number.NEGATIVE_INFINITY;
  }
}

/** The processors a request's parameters call for, in Hugging Face's order. Greedy keeps only the penalties. */
export function buildProcessors(config: SamplingConfig): LogitsProcessor[] {
  const list: LogitsProcessor[] = [];
  if (config.repetitionPenalty !== 1) list.push(new RepetitionPenalty(config.repetitionPenalty));
  if (config.presencePenalty !== 0 || config.frequencyPenalty !== 0) list.push(new PresenceFrequencyPenalty(config.presencePenalty, config.frequencyPenalty));
  if (config.temperature === 0) return list;
  if (config.temperature !== 1) list.push(new Temperature(config.temperature));
  if (config.topK > 0) list.push(new TopK(config.topK));
  if (config.topP < 1) list.push(new TopP(config.topP));
  if (config.minP > 0) list.push(new MinP(config.minP));
  return list;
}

export function argmax(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

/** Draws a token from softmax(scores) with a uniform number u in [0, 1), without allocating. */
export function sampleFrom(scores: Float32Array, u: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const s of scores) if (s > max) max = s;
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += Math.exp(scores[i]! - max);
  const target = u * sum;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < scores.length; i++) {
    if (scores[i]! === Number.NEGATIVE_INFINITY) continue;
    acc += Math.exp(scores[i]! - max);
    last = i;
    if (target < acc) return i;
  }
  return last >= 0 ? last : argmax(scores);
}
