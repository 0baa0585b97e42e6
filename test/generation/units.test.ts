import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IncrementalDecoder, StopMatcher } from '../../src/generation/detokenizer.js';
import { buildProcessors, MinP, sampleFrom, TopK, TopP } from '../../src/generation/logits-processors.js';
import { resolveParams } from '../../src/generation/params.js';
import { SeededRandom } from '../../src/generation/rng.js';
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
