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

/** Keeps the k best scores. */
export class TopK implements LogitsProcessor {
  constructor(private readonly k: number) {}
  process(scores: Float32Array): void {
    if (this.k >= scores.length) return;
    const threshold = Float32Array.from(scores).sort().reverse()[this.k - 1]!;
    let kept = 0;
    for (let i = 0; i < scores.length; i++) {
      if (scores[i]! < threshold || (scores[i] === threshold && kept >= this.k)) scores[i] = Number.NEGATIVE_INFINITY;
      else kept++;
    }
  }
}

function softmax(scores: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const s of scores) if (s > max) max = s;
  const probs = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += probs[i] = Math.exp(scores[i]! - max);
  for (let i = 0; i < probs.length; i++) probs[i]! /= sum;
  return probs;
}

/** Keeps the smallest set of best tokens whose probability reaches p (always at least one). */
export class TopP implements LogitsProcessor {
  constructor(private readonly p: number) {}
  process(scores: Float32Array): void {
    const probs = softmax(scores);
    const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]!);
    let total = 0;
    let cut = order.length;
    for (let r = 0; r < order.length; r++) {
      total += probs[order[r]!]!;
      if (total >= this.p) {
        cut = r + 1;
        break;
      }
    }
    for (let r = cut; r < order.length; r++) scores[order[r]!] = Number.NEGATIVE_INFINITY;
  }
}

/** Drops tokens whose probability is below minP × the best token's. */
export class MinP implements LogitsProcessor {
  constructor(private readonly minP: number) {}
  process(scores: Float32Array): void {
    const probs = softmax(scores);
    let best = 0;
    for (const p of probs) if (p > best) best = p;
    const floor = best * this.minP;
    for (let i = 0; i < scores.length; i++) if (probs[i]! < floor) scores[i] = Number.NEGATIVE_INFINITY;
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

/** Draws a token from softmax(scores) with a uniform number u in [0, 1). */
export function sampleFrom(scores: Float32Array, u: number): number {
  const probs = softmax(scores);
  let acc = 0;
  for (let i = 0; i < probs.length; i++) {
    acc += probs[i]!;
    if (u < acc) return i;
  }
  return argmax(scores);
}
