import type { ErrorCode } from '../errors.js';
import type { TextTokenizer } from '../models/tokenizer.js';
import type { CacheSlice } from './decoder.js';
import { IncrementalDecoder, StopMatcher } from './detokenizer.js';
import { argmax, buildProcessors, type LogitsProcessor, sampleFrom } from './logits-processors.js';
import type { SamplingConfig } from './params.js';
import { type SequenceOutput, wallMs } from './protocol.js';
import { SeededRandom } from './rng.js';
import type { FinishReason, GenerationMetrics, TokenEvent } from './types.js';

export type SequenceStatus = 'WAITING' | 'RUNNING' | 'FINISHED';

/**
 * One generation request inside the engine: validated parameters, its own
 * RNG and processors, the tokens so far; its events go out through `out`.
 * The scheduler owns it; the client can only cancel it.
 */
export class Sequence {
  status: SequenceStatus = 'WAITING';
  cancelled = false;
  /** The scheduler's step count when it was cancelled (-1: not cancelled). */
  cancelledAtStep = -1;
  finishReason: FinishReason | null = null;
  /** Real tokens in this sequence's KV cache. */
  length = 0;
  /** Sampled, not yet fed to the model. */
  nextToken = -1;
  /** Where its cache rows are, when not in the running batch (just prefilled). */
  pending: CacheSlice | null = null;
  readonly generated: number[] = [];
  admittedAt = 0;
  firstTokenAt = 0;
  private readonly seen: Set<number>;
  private readonly counts = new Map<number, number>();
  private readonly rng: SeededRandom;
  private readonly processors: LogitsProcessor[];
  private readonly decoder: IncrementalDecoder;
  private readonly stops: StopMatcher;

  constructor(
    readonly id: number,
    readonly prompt: readonly number[],
    readonly config: SamplingConfig,
    readonly priority: number,
    /** Wall-clock ms (protocol.wallMs) when the client asked. */
    readonly submittedAt: number,
    tokenizer: TextTokenizer,
    private readonly eosIds: ReadonlySet<number>,
    private readonly maxPositions: number,
    private readonly out: (output: SequenceOutput) => void,
  ) {
    this.seen = new Set(prompt);
    this.rng = new SeededRandom(config.seed);
    this.processors = buildProcessors(config);
    this.decoder = new IncrementalDecoder(tokenizer);
    this.stops = new StopMatcher(config.stop);
  }

  /** Picks the next token from this row's logits (the model's output is left untouched). */
  choose(logits: Float32Array): number {
    if (this.processors.length === 0 && this.config.temperature === 0) return argmax(logits);
    const scores = logits.slice();
    for (const p of this.processors) p.process(scores, { seen: this.seen, generated: this.counts });
    return this.config.temperature === 0 ? argmax(scores) : sampleFrom(scores, this.rng.next());
  }

  /** Records a new token, sends its event, and says whether the sequence finished. */
  accept(token: number): boolean {
    if (this.generated.length === 0) this.firstTokenAt = wallMs();
    this.generated.push(token);
    this.seen.add(token);
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    this.nextToken = token;
    let text = '';
    let finish: FinishReason | null = null;
    if (this.eosIds.has(token)) {
      finish = 'STOP';
      text = this.stops.flush();
    } else {
      const piece = this.stops.push(this.decoder.push(token));
      text = piece.text;
      if (piece.stopped) finish = 'STOP_SEQUENCE';
    }
    if (!finish && (this.generated.length >= this.config.maxTokens || this.prompt.length + this.generated.length >= this.maxPositions)) {
      finish = 'LENGTH';
      text += this.stops.flush();
    }
    this.out({ id: this.id, event: this.event(this.generated.length - 1, token, text, finish) });
    if (finish) this.finish(finish);
    return finish !== null;
  }

  /** Ends the sequence early (cancelled by the client, a job cancel or shutdown). */
  cancel(): void {
    if (this.status === 'FINISHED') return;
    this.cancelled = true;
    this.out({ id: this.id, event: this.event(this.generated.length, null, this.stops.flush(), 'CANCELLED') });
    this.finish('CANCELLED');
  }

  /** Ends the sequence with an error (a failed run, a passed deadline) instead of a finish reason. */
  fail(code: ErrorCode, message: string): void {
    if (this.status === 'FINISHED') return;
    this.status = 'FINISHED';
    this.pending = null;
    this.out({ id: this.id, error: { code, message } });
  }

  private finish(reason: FinishReason): void {
    this.finishReason = reason;
    this.status = 'FINISHED';
    this.pending = null;
  }

  private event(index: number, tokenId: number | null, text: string, finish: FinishReason | null): TokenEvent {
    if (!finish) return { index, tokenId, text, finishReason: null, usage: null, metrics: null };
    const completion = this.generated.length;
    return {
      index,
      tokenId,
      text,
      finishReason: finish,
      usage: { promptTokens: this.prompt.length, completionTokens: completion, totalTokens: this.prompt.length + completion },
      metrics: this.metrics(),
    };
  }

  metrics(): GenerationMetrics {
    const now = wallMs();
    const admitted = this.admittedAt || now;
    const running = (now - admitted) / 1000;
    return {
      queueMs: admitted - this.submittedAt,
      ttftMs: this.firstTokenAt ? this.firstTokenAt - this.submittedAt : 0,
      tokensPerSecond: running > 0 ? this.generated.length / running : 0,
      totalMs: now - this.submittedAt,
    };
  }
}
