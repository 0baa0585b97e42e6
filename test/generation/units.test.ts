import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IncrementalDecoder, StopMatcher } from '../../src/generation/detokenizer.js';
import { buildProcessors, MinP, sampleFrom, TopK, TopP } from '../../src/generation/logits-processors.js';
import { resolveParams } from '../../src/generation/params.js';
import { SeededRandom } from '../../src/generation/rng.js';
import { TokenStream } from '../../src/generation/stream.js';
import type { TokenEvent } from '../../src/generation/types.js';
import { TextTokenizer } from '../../src/models/tokenizer.js';
import { SHIPPED_MODELS } from '../helpers/server.js';

const tokenizer = await TextTokenizer.load(join(SHIPPED_MODELS, 'fortune-lm', 'tokenizer.json'), join(SHIPPED_MODELS, 'fortune-lm', 'tokenizer_config.json'));

describe('IncrementalDecoder', () => {
  it('streams text that joins to the full decode and never splits a character', () => {
    for (const text of ['Hello, world! It is 2024.', 'café — naïve 😀 日本語のテキスト', '  two  spaces\nand a newline']) {
      const ids = tokenizer.encode(text, false);
      const decoder = new IncrementalDecoder(tokenizer);
      const pieces = ids.map((id) => decoder.push(id));
      expect(pieces.join('')).toBe(text);
      for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    }
  });
});

describe('IncrementalDecoder on split characters', () => {
  it('holds back the first bytes of a character until its last byte arrives', () => {
    // Byte-level BPE: feed a multi-byte character's pieces one token at a time.
    const text = '😀日';
    const ids = tokenizer.encode(text, false);
    const decoder = new IncrementalDecoder(tokenizer);
    const pieces = ids.map((id) => decoder.push(id));
    expect(pieces.join('')).toBe(text);
    expect(pieces.every((p) => p === '' || [...p].every((c) => c !== '\uFFFD'))).toBe(true);
    if (ids.length > 2) expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0);
  });
});

describe('StopMatcher', () => {
  it('holds back a possible stop sequence and never emits it', () => {
    const m = new StopMatcher(['\n\n', 'END']);
    expect(m.push('Hello')).toEqual({ text: 'Hello', stopped: false });
    expect(m.push(' E')).toEqual({ text: ' ', stopped: false });
    expect(m.push('N')).toEqual({ text: '', stopped: false });
    expect(m.push('Dless')).toEqual({ text: '', stopped: true });
  });

  it('releases held text when the stop sequence does not come', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('the E')).toEqual({ text: 'the ', stopped: false });
    expect(m.push('nd')).toEqual({ text: 'End', stopped: false });
    expect(m.push(' E').text + m.flush()).toBe(' E');
  });

  it('finds a stop sequence that spans pieces, keeping the text before it', () => {
    const m = new StopMatcher(['\n\n']);
    expect(m.push('one\n')).toEqual({ text: 'one', stopped: false });
    expect(m.push('\ntwo')).toEqual({ text: '', stopped: true });
  });
});

describe('resolveParams', () => {
  const limits = { maxTokens: 100 };
  it.each([
    [{ temperature: -0.1 }, 'temperature'],
    [{ topP: 0 }, 'topP'],
    [{ topP: 1.5 }, 'topP'],
    [{ topK: -1 }, 'topK'],
    [{ minP: 1 }, 'minP'],
    [{ maxTokens: 0 }, 'maxTokens'],
    [{ maxTokens: 101 }, 'maxTokens'],
    [{ repetitionPenalty: 0 }, 'repetitionPenalty'],
    [{ presencePenalty: 3 }, 'presencePenalty'],
    [{ frequencyPenalty: -2.5 }, 'frequencyPenalty'],
    [{ seed: -1 }, 'seed'],
    [{ stop: [''] }, 'stop'],
  ])('%o is BAD_GENERATION_PARAMS on %s', (params, param) => {
    expect(() => resolveParams(params, {}, limits)).toThrow(expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_GENERATION_PARAMS', param }) }));
  });

  it("clamps the model's default maxTokens to the server limit, but not a client's", () => {
    expect(resolveParams({}, { maxTokens: 500 }, limits).maxTokens).toBe(100);
    expect(() => resolveParams({ maxTokens: 500 }, { maxTokens: 500 }, limits)).toThrow(/at most 100/);
  });

  it('fills unset parameters from the model defaults', () => {
    const c = resolveParams({ topK: 5 }, { temperature: 0.7, topK: 40, repetitionPenalty: 1.2, maxTokens: 30 }, limits);
    expect(c).toMatchObject({ temperature: 0.7, topK: 5, repetitionPenalty: 1.2, maxTokens: 30, topP: 1 });
  });
});

describe('logits processors', () => {
  it('top-k keeps the k best', () => {
    const s = Float32Array.from([1, 5, 3, 4, 2]);
    new TopK(2).process(s);
    expect(Array.from(s)).toEqual([-Infinity, 5, -Infinity, 4, -Infinity]);
  });

  it('top-p keeps the smallest set reaching p', () => {
    const s = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    new TopP(0.7).process(s);
    expect(s[2]).toBe(-Infinity);
    expect(Number.isFinite(s[0]!) && Number.isFinite(s[1]!)).toBe(true);
  });

  it('min-p drops tokens below minP × the best', () => {
    const s = Float32Array.from([Math.log(0.6), Math.log(0.3), Math.log(0.1)]);
    new MinP(0.25).process(s);
    expect(s[2]).toBe(-Infinity);
    expect(Number.isFinite(s[1]!)).toBe(true);
  });

  it('greedy builds no sampling processors; penalties apply to seen tokens', () => {
    const config = resolveParams({ temperature: 0, repetitionPenalty: 2, frequencyPenalty: 1 }, {}, { maxTokens: 10 });
    const list = buildProcessors(config);
    expect(list.map((p) => p.constructor.name)).toEqual(['RepetitionPenalty', 'PresenceFrequencyPenalty']);
    const s = Float32Array.from([4, -4, 1]);
    for (const p of list) p.process(s, { seen: new Set([0, 1]), generated: new Map([[0, 2]]) });
    expect(Array.from(s)).toEqual([0, -8, 1]);
  });

  it('top-k keeps ties with the k-th score', () => {
    const s = Float32Array.from([1, 3, 3, 2, 3]);
    new TopK(2).process(s);
    expect(Array.from(s)).toEqual([-Infinity, 3, 3, -Infinity, 3]);
  });

  it('top-p agrees with a sort-everything reference on random scores', () => {
    const rng = new SeededRandom(11);
    for (let trial = 0; trial < 50; trial++) {
      const scores = Float32Array.from({ length: 300 }, () => (rng.next() - 0.5) * 12);
      const p = 0.05 + 0.9 * rng.next();
      const probs = Array.from(scores, (x) => Math.exp(x));
      const sum = probs.reduce((a, b) => a + b, 0);
      const order = probs.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]!);
      const kept = new Set<number>();
      let total = 0;
      for (const i of order) {
        kept.add(i);
        total += probs[i]! / sum;
        if (total >= p) break;
      }
      const ours = scores.slice();
      new TopP(p).process(ours);
      expect(new Set(Array.from(ours.keys()).filter((i) => ours[i]! > -Infinity))).toEqual(kept);
    }
  });

  it('top-k then top-p only sorts what top-k left', () => {
    const s = Float32Array.from({ length: 1000 }, (_, i) => -i);
    new TopK(5).process(s);
    new TopP(0.999).process(s);
    expect(Array.from(s.keys()).filter((i) => s[i]! > -Infinity)).toEqual([0, 1, 2, 3, 4]);
  });

  it('sampling follows softmax(scores) and never draws a removed token', () => {
    const scores = Float32Array.from([Math.log(0.5), Math.log(0.3), -Infinity, Math.log(0.2)]);
    const rng = new SeededRandom(3);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[sampleFrom(scores, rng.next())]!++;
    expect(counts[2]).toBe(0);
    expect(counts[0]! / 20_000).toBeCloseTo(0.5, 1);
    expect(counts[1]! / 20_000).toBeCloseTo(0.3, 1);
    expect(counts[3]! / 20_000).toBeCloseTo(0.2, 1);
    expect(sampleFrom(scores, 0.999_999_999)).toBe(3);
  });

  it('sampling with the same seed repeats', () => {
    const scores = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
    const draw = (seed: number) => {
      const rng = new SeededRandom(seed);
      return Array.from({ length: 20 }, () => sampleFrom(scores, rng.next()));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });
});

describe('TokenStream', () => {
  const token = (index: number): TokenEvent => ({ index, tokenId: 100 + index, text: `t${index}`, finishReason: null, usage: null, metrics: null });
  const last = (index: number, finishReason: TokenEvent['finishReason'] = 'LENGTH'): TokenEvent => ({
    ...token(index),
    finishReason,
    usage: { promptTokens: 4, completionTokens: index + 1, totalTokens: index + 5 },
    metrics: { queueMs: 1, ttftMs: 2, tokensPerSecond: 3, totalMs: 4 },
  });
  const readAll = async (stream: TokenStream) => {
    const out: TokenEvent[] = [];
    for await (const e of stream) out.push(e);
    return out;
  };

  it('delivers in order, buffering what the reader has not taken', async () => {
    const stream = new TokenStream(() => {});
    stream.push(token(0));
    stream.push(token(1));
    const reading = readAll(stream);
    stream.push(last(2));
    expect((await reading).map((e) => e.index)).toEqual([0, 1, 2]);
  });

  it('a cancel drops unread tokens, asks the worker to stop, and closes with CANCELLED counting what was read', async () => {
    let asked = 0;
    const stream = new TokenStream(() => asked++);
    stream.push(token(0));
    stream.push(token(1));
    expect((await stream.next()).value.index).toBe(0);
    stream.push(token(2));
    stream.cancel();
    expect(asked).toBe(1);
    // The worker keeps going until the cancel reaches it; those tokens never show.
    stream.push(token(3));
    stream.push(last(4, 'CANCELLED'));
    const rest = await readAll(stream);
    expect(rest).toEqual([
      { index: 1, tokenId: null, text: '', finishReason: 'CANCELLED', usage: { promptTokens: 4, completionTokens: 1, totalTokens: 5 }, metrics: last(4).metrics },
    ]);
  });

  it('a cancel after the worker finished but before the reader caught up still ends with CANCELLED', async () => {
    let asked = 0;
    const stream = new TokenStream(() => asked++);
    for (const e of [token(0), token(1), last(2)]) stream.push(e);
    await stream.next();
    stream.cancel();
    expect(asked).toBe(0);
    expect((await readAll(stream)).map((e) => [e.index, e.finishReason])).toEqual([[1, 'CANCELLED']]);
  });

  it('a cancel after the reader took everything changes nothing', async () => {
    const stream = new TokenStream(() => {
      throw new Error('not asked');
    });
    stream.push(last(0, 'STOP'));
    expect((await readAll(stream)).map((e) => e.finishReason)).toEqual(['STOP']);
    stream.cancel();
    expect((await stream.next()).done).toBe(true);
  });

  it('return() stops the sequence once and ends at once; an error rejects a waiting read', async () => {
    let asked = 0;
    const left = new TokenStream(() => asked++);
    const waiting = left.next();
    await left.return();
    expect(await waiting).toEqual({ value: undefined, done: true });
    left.cancel();
    expect(asked).toBe(1);
    const failed = new TokenStream(() => {});
    const read = failed.next();
    failed.fail(new Error('boom'));
    await expect(read).rejects.toThrow('boom');
  });
});
