// fortune-lm in transformers.js gives exactly the tokens of a plain onnxruntime-node greedy loop over the same file,
// and @huggingface/tokenizers reads the same tokenizer.json the same way.
import { join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env } from '@huggingface/transformers';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { MODELS, greedy, lmConfig, modelPath, readJson } from './lm.js';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = MODELS + '/';

const PROMPTS = ['The meaning of life is', 'A computer', 'Love is', 'Never trust a', 'It is a truth universally acknowledged that'];
const MAX_NEW_TOKENS = 20;
const TEXTS = [
  'Hello, world! It\'s 2024 and the disk is 99% full.',
  'café — naïve 😀',
  '  Two leading spaces,\ttabs\nand new\n\nlines.  ',
  'Ünïcödé: 日本語, ελληνικά, русский.',
  '',
];

const ids = (t: { tolist(): unknown }) => (t.tolist() as (number | bigint)[][]).map((row) => row.map(Number));

describe('fortune-lm in transformers.js', () => {
  const cfg = lmConfig();
  const generation = readJson(join(MODELS, 'fortune-lm', 'generation_config.json'));
  let model: Awaited<ReturnType<typeof AutoModelForCausalLM.from_pretrained>>;
  let hfTokenizer: Awaited<ReturnType<typeof AutoTokenizer.from_pretrained>>;
  let session: ort.InferenceSession;
  let tokenizer: Tokenizer;

  beforeAll(async () => {
    hfTokenizer = await AutoTokenizer.from_pretrained('fortune-lm');
    model = await AutoModelForCausalLM.from_pretrained('fortune-lm', { dtype: 'fp32', device: 'cpu' });
    session = await ort.InferenceSession.create(modelPath('fortune-lm'));
    const dir = join(MODELS, 'fortune-lm');
    tokenizer = new Tokenizer(readJson(join(dir, 'tokenizer.json')), readJson(join(dir, 'tokenizer_config.json')));
  });

  it('ships a config transformers.js understands', () => {
    expect(cfg).toMatchObject({ model_type: 'llama', bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 });
    expect(generation).toMatchObject({ do_sample: true, eos_token_id: cfg.eos_token_id });
    expect(generation.top_k).toBeGreaterThan(0);
    expect(generation.repetition_penalty).toBeGreaterThan(1);
  });

  it('greedy generate() equals a plain onnxruntime greedy loop with the KV cache', async () => {
    for (const prompt of PROMPTS) {
      const inputs = hfTokenizer(prompt);
      const prompted = ids(inputs.input_ids)[0];
      expect(prompted[0]).toBe(cfg.bos_token_id);
      const output = await model.generate({ ...inputs, max_new_tokens: MAX_NEW_TOKENS, do_sample: false, repetition_penalty: 1.0 });
      const expected = await greedy(session, cfg, prompted, MAX_NEW_TOKENS);
      expect(ids(output as any)[0], prompt).toEqual(expected);
      expect(expected.length).toBeGreaterThan(prompted.length);
    }
  });

  it('also with the repetition penalty of generation_config.json', async () => {
    for (const prompt of PROMPTS.slice(0, 4)) {
      const inputs = hfTokenizer(prompt);
      const output = await model.generate({ ...inputs, max_new_tokens: MAX_NEW_TOKENS, do_sample: false });
      const expected = await greedy(session, cfg, ids(inputs.input_ids)[0], MAX_NEW_TOKENS, generation.repetition_penalty);
      expect(ids(output as any)[0], prompt).toEqual(expected);
    }
  });

  it('@huggingface/tokenizers round-trips text and encodes like transformers.js', () => {
    for (const text of TEXTS) {
      const encoded = tokenizer.encode(text).ids;
      expect(encoded[0], 'the post-processor adds BOS').toBe(cfg.bos_token_id);
      expect(tokenizer.decode(encoded, { skip_special_tokens: true }), text).toBe(text);
      expect(hfTokenizer.encode(text), text).toEqual(encoded);
      expect(hfTokenizer.decode(encoded, { skip_special_tokens: true }), text).toBe(text);
    }
    expect(tokenizer.encode('café — naïve 😀', { add_special_tokens: false }).ids[0]).not.toBe(cfg.bos_token_id);
    expect(tokenizer.token_to_id('<|bos|>')).toBe(cfg.bos_token_id);
    expect(tokenizer.token_to_id('<|eos|>')).toBe(cfg.eos_token_id);
    expect(tokenizer.token_to_id('<|pad|>')).toBe(cfg.pad_token_id);
  });
});
