"""Trains models/fortune-lm: a small Llama-style decoder on the fortunes corpus.

Needs the tokenizer (tools/train_tokenizer.py) first. Exports onnx/model.onnx
with the "decoder with past" I/O, and config.json, generation_config.json,
inferql.json and a model card in the Hugging Face / transformers.js layout.

Run: /usr/bin/python3 tools/train_lm.py        (STEPS=N to change the step count)
"""
import json
import math
import os
import time

import torch

import bpe
from common import count_params, model_dir, seed_everything, write_json
from corpus import all_quotes, is_held_out
from llama import Llama, export_onnx

SEED = 0
STEPS = int(os.environ.get('STEPS', 800))
BATCH = 16
CONTEXT = 128
PROMPTS = ['The meaning of life is', 'A computer', 'Love is', 'Never trust a', 'The best way to']

CONFIG = {
    'architectures': ['LlamaForCausalLM'],
    'model_type': 'llama',
    'vocab_size': 2048,
    'hidden_size': 256,
    'intermediate_size': 704,
    'num_hidden_layers': 4,
    'num_attention_heads': 8,
    'num_key_value_heads': 4,
    'head_dim': 32,
    'max_position_embeddings': 512,
    'rms_norm_eps': 1e-5,
    'rope_theta': 10000.0,
    'rope_scaling': None,
    'hidden_act': 'silu',
    'attention_bias': False,
    'attention_dropout': 0.0,
    'mlp_bias': False,
    'initializer_range': 0.02,
    'tie_word_embeddings': True,
    'use_cache': True,
    'pad_token_id': 0,
    'bos_token_id': 1,
    'eos_token_id': 2,
    'torch_dtype': 'float32',
    'transformers_version': '4.46.0',
}

GENERATION_CONFIG = {
    'bos_token_id': 1,
    'eos_token_id': 2,
    'pad_token_id': 0,
    'do_sample': True,
    'temperature': 0.8,
    'top_k': 40,
    'top_p': 0.95,
    'repetition_penalty': 1.15,
    'max_new_tokens': 64,
    'transformers_version': '4.46.0',
}


def load_encoder(out):
    with open(os.path.join(out, 'tokenizer.json'), encoding='utf-8') as f:
        tj = json.load(f)
    merges = [tuple(m.split(' ')) for m in tj['model']['merges']]
    return bpe.Encoder(tj['model']['vocab'], merges), {v: k for k, v in tj['model']['vocab'].items()}


def stream(encoder, quotes):
    ids = []
    for q in quotes:
        ids.extend(encoder.encode(q))
        ids.append(CONFIG['eos_token_id'])
    return torch.tensor(ids, dtype=torch.long)


def windows(tokens):
    n = (len(tokens) - 1) // CONTEXT
    x = tokens[: n * CONTEXT].view(n, CONTEXT)
    y = tokens[1: n * CONTEXT + 1].view(n, CONTEXT)
    return x, y


def forward_loss(model, x, y):
    b, s = x.shape
    mask = torch.ones(b, s, dtype=torch.long)
    pos = torch.arange(s)[None, :].repeat(b, 1)
    logits, _ = model(x, mask, pos)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(x), 64):
        loss = forward_loss(model, x[i:i + 64], y[i:i + 64])
        total += loss.item() * x[i:i + 64].numel()
        count += x[i:i + 64].numel()
    model.train()
    return total / count


def byte_decode(tokens, id_to_token):
    char_to_byte = {c: b for b, c in bpe.BYTE_TO_CHAR.items()}
    text = ''.join(id_to_token[t] for t in tokens if t > 2)
    return bytes(char_to_byte[c] for c in text).decode('utf-8', errors='replace')


@torch.no_grad()
def sample(model, prompt_ids, max_new, greedy, generator):
    model.eval()
    ids = list(prompt_ids)
    for _ in range(max_new):
        x = torch.tensor([ids])
        logits, _ = model(x, torch.ones_like(x), torch.arange(len(ids))[None, :])
        scores = logits[0, -1].clone()
        if not greedy:
            for t in set(ids):
                scores[t] = scores[t] / GENERATION_CONFIG['repetition_penalty'] if scores[t] > 0 else scores[t] * GENERATION_CONFIG['repetition_penalty']
            scores = scores / GENERATION_CONFIG['temperature']
            top = torch.topk(scores, GENERATION_CONFIG['top_k'])
            probs = torch.softmax(top.values, -1)
            nxt = top.indices[torch.multinomial(probs, 1, generator=generator)].item()
        else:
            nxt = int(scores.argmax())
        if nxt == CONFIG['eos_token_id']:
            break
        ids.append(nxt)
    return ids[len(prompt_ids):]


def main():
    seed_everything(SEED)
    out = model_dir('fortune-lm')
    encoder, id_to_token = load_encoder(out)
    quotes = [q for _, q in all_quotes()]
    train_x, train_y = windows(stream(encoder, [q for q in quotes if not is_held_out(q)]))
    val_x, val_y = windows(stream(encoder, [q for q in quotes if is_held_out(q)]))
    print(f'train windows {len(train_x)} ({train_x.numel()} tokens), val windows {len(val_x)} ({val_x.numel()} tokens)')

    model = Llama(CONFIG)
    params = count_params(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = 50
    schedule = lambda step: min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / STEPS))))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    gen = torch.Generator().manual_seed(SEED)
    started = time.time()
    for step in range(STEPS):
        idx = torch.randint(0, len(train_x), (BATCH,), generator=gen)
        loss = forward_loss(model, train_x[idx], train_y[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 200 == 0 or step == STEPS - 1:
            print(f'step {step} loss {loss.item():.3f} {time.time() - started:.0f}s', flush=True)
    seconds = time.time() - started
    val_loss = evaluate(model, val_x, val_y)
    train_loss = evaluate(model, train_x[:512], train_y[:512])
    print(f'val loss {val_loss:.3f} perplexity {math.exp(val_loss):.1f} (train {train_loss:.3f}), {seconds:.0f}s')

    model.eval()
    os.makedirs(os.path.join(out, 'onnx'), exist_ok=True)
    export_onnx(model, CONFIG, os.path.join(out, 'onnx', 'model.onnx'))
    write_json(os.path.join(out, 'config.json'), CONFIG)
    write_json(os.path.join(out, 'generation_config.json'), GENERATION_CONFIG)
    write_json(os.path.join(out, 'inferql.json'), {'task': 'TEXT_GENERATION', 'version': '1'})

    sample_gen = torch.Generator().manual_seed(SEED)
    samples = []
    for prompt in PROMPTS:
        ids = encoder.encode(prompt)
        greedy = byte_decode(sample(model, ids, 40, True, sample_gen), id_to_token)
        sampled = byte_decode(sample(model, ids, 40, False, sample_gen), id_to_token)
        samples.append((prompt, greedy, sampled))
    lines = '\n'.join(f'- **{p}** … greedy: “{p}{g}” · sampled: “{p}{s}”' for p, g, s in samples)
    with open(os.path.join(out, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(f"""# fortune-lm

A small Llama-style decoder ({params:,} parameters): {CONFIG['num_hidden_layers']} layers, hidden {CONFIG['hidden_size']},
{CONFIG['num_attention_heads']} query heads sharing {CONFIG['num_key_value_heads']} key/value heads (head dim {CONFIG['head_dim']}),
SwiGLU MLP {CONFIG['intermediate_size']}, RMSNorm, rotary positions, tied embeddings, a {CONFIG['vocab_size']}-token byte-level BPE.

- **Data**: Debian's `fortunes` corpus (`/usr/share/games/fortunes`, every topic file), quotes of at most 800 characters,
  each encoded as BOS + text + EOS and concatenated.
- **Split**: a quote is held out when the first 32 bits of its SHA-256 mod 100 are < 5 (about 5%, stable across machines):
  {train_x.numel():,} training tokens, {val_x.numel():,} held-out tokens.
- **Training**: {STEPS} steps of {BATCH}×{CONTEXT} tokens, AdamW (lr 3e-3, cosine to 10%, warm-up 50, weight decay 0.1),
  seed {SEED}; {seconds / 60:.1f} minutes on 2 CPU cores.
- **Held-out loss**: {val_loss:.3f} nats/token, perplexity {math.exp(val_loss):.1f} (training loss {train_loss:.3f}).
- **Export**: `onnx/model.onnx`, opset 17, Hugging Face "decoder with past" I/O: `input_ids`, `attention_mask`,
  `position_ids`, `past_key_values.{{i}}.key|value` → `logits`, `present.{{i}}.key|value`; an empty past is accepted.
- **Sampling defaults** (`generation_config.json`): temperature {GENERATION_CONFIG['temperature']}, top-k {GENERATION_CONFIG['top_k']},
  top-p {GENERATION_CONFIG['top_p']}, repetition penalty {GENERATION_CONFIG['repetition_penalty']}.

Samples (greedy, and sampled with the defaults):

{lines}

Rebuild: `/usr/bin/python3 tools/train_tokenizer.py && /usr/bin/python3 tools/train_lm.py`.
""")
    for p, g, s in samples:
        print(f'{p!r}: greedy {g!r} | sampled {s!r}')


if __name__ == '__main__':
    main()
