"""Trains models/fortune-lm: a small Llama-style decoder on the fortunes corpus.

Needs the tokenizer (tools/train_tokenizer.py) first. Trains for a wall-clock
budget (LM_MINUTES, default 17) -- or for exactly LM_STEPS steps, which makes a
run bit-for-bit repeatable -- then evaluates on the held-out split, checks the
cached (KV) path against the full forward pass, exports onnx/model.onnx with
the Hugging Face "decoder with past" I/O, and writes config.json,
generation_config.json, inferql.json and the model card.

Run: /usr/bin/python3 tools/train_lm.py
"""
import json
import math
import os
import time

import onnx
import torch

import bpe
from common import count_params, model_dir, seed_everything, write_json
from corpus import all_quotes, is_held_out
from llama import Llama, export_onnx

SEED = 0
MINUTES = float(os.environ.get('LM_MINUTES', 17))
FIXED_STEPS = int(os.environ['LM_STEPS']) if os.environ.get('LM_STEPS') else None
BATCH = 8
CONTEXT = 256
PEAK_LR, MIN_LR_FRACTION, WARMUP = 3e-3, 0.1, 30
EXPECTED_OUT = os.environ.get('LM_EXPECTED', '/tmp/fortune-lm-expected.json')
PROMPTS = ['The meaning of life is', 'A computer', 'Love is', 'Never trust a', 'The best way to']

CONFIG = {
    'architectures': ['LlamaForCausalLM'],
    'model_type': 'llama',
    'vocab_size': 4096,
    'hidden_size': 256,
    'intermediate_size': 512,
    'num_hidden_layers': 6,
    'num_attention_heads': 4,
    'num_key_value_heads': 2,
    'head_dim': 64,
    'max_position_embeddings': CONTEXT,
    'rms_norm_eps': 1e-5,
    'rope_theta': 10000.0,
    'rope_scaling': None,
    'hidden_act': 'silu',
    'attention_bias': False,
    'attention_dropout': 0.0,
    'mlp_bias': False,
    'pretraining_tp': 1,
    'initializer_range': 0.02,
    'tie_word_embeddings': True,
    'use_cache': True,
    'pad_token_id': 0,
    'bos_token_id': 1,
    'eos_token_id': 2,
    'torch_dtype': 'float32',
    'transformers_version': '4.46.0',
    'transformers.js_config': {'dtype': 'fp32'},
}

GENERATION_CONFIG = {
    'bos_token_id': 1,
    'eos_token_id': 2,
    'pad_token_id': 0,
    'do_sample': True,
    'temperature': 0.8,
    'top_k': 40,
    'top_p': 0.95,
    'repetition_penalty': 1.1,
    'max_new_tokens': 96,
    'transformers_version': '4.46.0',
}


def load_tokenizer(out):
    with open(os.path.join(out, 'tokenizer.json'), encoding='utf-8') as f:
        tj = json.load(f)
    merges = [tuple(m.split(' ')) for m in tj['model']['merges']]
    return bpe.Encoder(tj['model']['vocab'], merges), {v: k for k, v in tj['model']['vocab'].items()}


def stream(encoder, quotes):
    """Each quote as BOS + text + EOS (the tokenizer's post-processor adds the BOS), concatenated."""
    ids = []
    for q in quotes:
        ids.extend(encoder.encode(q))
        ids.append(CONFIG['eos_token_id'])
    return torch.tensor(ids, dtype=torch.long)


def full_positions(b, s):
    return torch.ones(b, s, dtype=torch.long), torch.arange(s)[None, :].repeat(b, 1)


def loss_on(model, x, y):
    mask, pos = full_positions(*x.shape)
    logits, _ = model(x, mask, pos)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction='sum')


@torch.no_grad()
def evaluate(model, tokens):
    """Mean loss (nats/token) over consecutive CONTEXT windows covering the whole stream."""
    model.eval()
    total, count = 0.0, 0
    starts = list(range(0, len(tokens) - 1, CONTEXT))
    for i in range(0, len(starts), 16):
        for st in starts[i:i + 16]:
            n = min(CONTEXT, len(tokens) - 1 - st)
            total += loss_on(model, tokens[st:st + n][None], tokens[st + 1:st + n + 1][None]).item()
            count += n
    model.train()
    return total / count


def lr_at(progress):
    """Linear warm-up over WARMUP steps, then cosine from PEAK_LR down to MIN_LR_FRACTION of it."""
    return PEAK_LR * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def byte_decode(tokens, id_to_token):
    char_to_byte = {c: b for b, c in bpe.BYTE_TO_CHAR.items()}
    text = ''.join(id_to_token[t] for t in tokens if t > 2)
    return bytes(char_to_byte[c] for c in text).decode('utf-8', errors='replace')


def empty_past(b):
    kv, hd = CONFIG['num_key_value_heads'], CONFIG['head_dim']
    return [torch.zeros(b, kv, 0, hd) for _ in range(2 * CONFIG['num_hidden_layers'])]


@torch.no_grad()
def generate(model, prompt_ids, max_new, greedy, generator):
    """KV-cached decoding with the generation_config.json rules (HF order: repetition penalty, temperature, top-k, top-p)."""
    g = GENERATION_CONFIG
    ids = list(prompt_ids)
    x = torch.tensor([ids])
    past = empty_past(1)
    out = []
    for _ in range(max_new):
        total = len(ids)
        logits, past = model(x, torch.ones(1, total, dtype=torch.long), torch.arange(total - x.shape[1], total)[None, :], past)
        scores = logits[0, -1].clone()
        if greedy:
            nxt = int(scores.argmax())
        else:
            seen = torch.tensor(sorted(set(ids)))
            s = scores[seen]
            scores[seen] = torch.where(s > 0, s / g['repetition_penalty'], s * g['repetition_penalty'])
            scores = scores / g['temperature']
            kth = torch.topk(scores, g['top_k']).values[-1]
            scores[scores < kth] = -float('inf')
            sorted_scores, order = torch.sort(scores, descending=True)
            cum = torch.softmax(sorted_scores, -1).cumsum(-1)
            drop = cum - torch.softmax(sorted_scores, -1) >= g['top_p']  # keep the smallest set reaching top_p
            scores[order[drop]] = -float('inf')
            nxt = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=generator))
        if nxt == CONFIG['eos_token_id']:
            break
        ids.append(nxt)
        out.append(nxt)
        x = torch.tensor([[nxt]])
    return out


@torch.no_grad()
def check_cache_and_padding(model, encoder):
    """The cached path and left-padded batches must give the full forward pass's logits."""
    model.eval()
    worst = 0.0
    a = encoder.encode('Whenever you find yourself on the side of the majority, it is time to pause.')
    full, _ = model(torch.tensor([a]), *full_positions(1, len(a)))
    k = 6
    logits, past = model(torch.tensor([a[:k]]), *full_positions(1, k), empty_past(1))
    worst = max(worst, (logits - full[:, :k]).abs().max().item())
    for t in range(k, len(a)):
        logits, past = model(torch.tensor([[a[t]]]), torch.ones(1, t + 1, dtype=torch.long), torch.tensor([[t]]), past)
        worst = max(worst, (logits[0, 0] - full[0, t]).abs().max().item())
    b = encoder.encode('Love is')
    pad = len(a) - len(b)
    ids = torch.tensor([a, [CONFIG['pad_token_id']] * pad + b])
    mask = torch.tensor([[1] * len(a), [0] * pad + [1] * len(b)])
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    batched, _ = model(ids, mask, pos, empty_past(2))
    alone, _ = model(torch.tensor([b]), *full_positions(1, len(b)))
    worst = max(worst, (batched[0] - full[0]).abs().max().item(), (batched[1, pad:] - alone[0]).abs().max().item())
    assert not torch.isnan(batched).any()
    assert worst < 1e-4, worst
    return worst


@torch.no_grad()
def write_expected(model, encoder):
    """Logits for a fixed input, for checking the ONNX file in onnxruntime-node (not shipped)."""
    ids = encoder.encode('A fool and his money')
    logits, _ = model(torch.tensor([ids]), *full_positions(1, len(ids)), empty_past(1))
    with open(EXPECTED_OUT, 'w') as f:
        json.dump({'input_ids': ids, 'last_logits': logits[0, -1].tolist(), 'all_logits_sum': logits.sum(-1)[0].tolist()}, f)


def main():
    seed_everything(SEED)
    out = model_dir('fortune-lm')
    encoder, id_to_token = load_tokenizer(out)
    assert len(id_to_token) == CONFIG['vocab_size']
    quotes = [q for _, q in all_quotes()]
    train_q = [q for q in quotes if not is_held_out(q)]
    val_q = [q for q in quotes if is_held_out(q)]
    train_t, val_t = stream(encoder, train_q), stream(encoder, val_q)
    val_bytes = sum(len(q.encode('utf-8')) for q in val_q)
    print(f'{len(train_q)} training quotes ({len(train_t)} tokens), {len(val_q)} held-out quotes ({len(val_t)} tokens)', flush=True)

    model = Llama(CONFIG)
    params = count_params(model)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=PEAK_LR, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(SEED)
    budget = MINUTES * 60
    started = time.time()
    step = 0
    while True:
        elapsed = time.time() - started
        progress = step / FIXED_STEPS if FIXED_STEPS else elapsed / budget
        if progress >= 1.0:
            break
        lr = lr_at(progress) * min(1.0, (step + 1) / WARMUP)
        for group in opt.param_groups:
            group['lr'] = lr
        starts = torch.randint(0, len(train_t) - CONTEXT - 1, (BATCH,), generator=gen)
        x = torch.stack([train_t[s:s + CONTEXT] for s in starts.tolist()])
        y = torch.stack([train_t[s + 1:s + CONTEXT + 1] for s in starts.tolist()])
        loss = loss_on(model, x, y) / y.numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f'step {step} loss {loss.item():.3f} lr {lr:.2e} {elapsed:.0f}s', flush=True)
        step += 1
    seconds = time.time() - started
    tokens_seen = step * BATCH * CONTEXT
    val_loss = evaluate(model, val_t)
    train_loss = evaluate(model, train_t[: len(val_t)])
    bits_per_byte = val_loss * (len(val_t) - 1) / math.log(2) / val_bytes
    print(f'{params} params, {step} steps ({tokens_seen} tokens, {tokens_seen / len(train_t):.2f} epochs) in {seconds:.0f}s')
    print(f'val loss {val_loss:.4f} perplexity {math.exp(val_loss):.2f} bits/byte {bits_per_byte:.3f} (train {train_loss:.4f})', flush=True)

    model.eval()
    worst = check_cache_and_padding(model, encoder)
    print(f'cached and left-padded paths match the full forward pass (max |diff| {worst:.2e})')
    onnx_path = os.path.join(out, 'onnx', 'model.onnx')
    os.makedirs(os.path.dirname(onnx_path), exist_ok=True)
    export_onnx(model, CONFIG, onnx_path)
    onnx.checker.check_model(onnx.load(onnx_path))
    write_expected(model, encoder)
    write_json(os.path.join(out, 'config.json'), CONFIG)
    write_json(os.path.join(out, 'generation_config.json'), GENERATION_CONFIG)
    write_json(os.path.join(out, 'inferql.json'), {'task': 'TEXT_GENERATION', 'version': '1'})

    sample_gen = torch.Generator().manual_seed(SEED)
    samples = []
    for prompt in PROMPTS:
        ids = encoder.encode(prompt)
        greedy = byte_decode(generate(model, ids, 48, True, sample_gen), id_to_token)
        sampled = byte_decode(generate(model, ids, 96, False, sample_gen), id_to_token)
        samples.append((prompt, greedy, sampled))
        print(f'{prompt!r}\n  greedy:  {prompt + greedy!r}\n  sampled: {prompt + sampled!r}', flush=True)
    md = lambda t: t.replace('\n', ' ⏎ ')
    lines = '\n'.join(f'- greedy: “{md(p + g)}”\n  sampled: “{md(p + s)}”' for p, g, s in samples)
    c, gc = CONFIG, GENERATION_CONFIG
    repro = f'LM_STEPS={step} ' if not FIXED_STEPS else f'LM_STEPS={FIXED_STEPS} '
    with open(os.path.join(out, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(f"""# fortune-lm

A small Llama-style decoder trained from scratch on fortune-cookie quotes: {params:,} parameters,
{c['num_hidden_layers']} layers, hidden {c['hidden_size']}, {c['num_attention_heads']} query heads sharing {c['num_key_value_heads']} key/value heads
(grouped-query attention, head dim {c['head_dim']}), SwiGLU MLP {c['intermediate_size']}, RMSNorm, rotary positions (theta {c['rope_theta']:g}),
tied input/output embeddings, a {c['vocab_size']}-token byte-level BPE trained on the same corpus (`tools/bpe.py`).
`onnx/model.onnx` is {os.path.getsize(onnx_path) / 1e6:.1f} MB (float32, opset 17).

- **Data**: Debian's `fortunes` corpus (`/usr/share/games/fortunes`, every topic file, duplicates removed), quotes of at
  most 800 characters, each encoded as BOS + text + EOS and concatenated.
- **Split**: a quote is held out when the first 32 bits of its SHA-256 mod 100 are < 5 (about 5%, stable across machines):
  {len(train_q):,} training quotes ({len(train_t):,} tokens), {len(val_q):,} held-out quotes ({len(val_t):,} tokens).
- **Training**: {step} steps of {BATCH} random {CONTEXT}-token windows ({tokens_seen:,} tokens, {tokens_seen / len(train_t):.1f} epochs),
  AdamW (peak lr {PEAK_LR:g}, {WARMUP}-step warm-up, cosine to {MIN_LR_FRACTION:g}× over the budget, betas 0.9/0.95, weight decay 0.1,
  gradient clipping 1.0), seed {SEED}, a {seconds / 60:.1f}-minute wall-clock budget on 2 shared CPU cores.
- **Held-out metrics** (consecutive {CONTEXT}-token windows over the held-out stream): loss **{val_loss:.3f}** nats/token,
  perplexity **{math.exp(val_loss):.1f}**, {bits_per_byte:.3f} bits per UTF-8 byte of quote text (training loss {train_loss:.3f}).
- **Export**: Hugging Face "decoder with past" I/O, checked against the torch model with and without the cache and with
  left padding: `input_ids`, `attention_mask`, `position_ids` (int64) and `past_key_values.{{i}}.key|value`
  (float32 `[batch_size, {c['num_key_value_heads']}, past_sequence_length, {c['head_dim']}]`, empty on the first step) →
  `logits` (float32 `[batch_size, sequence_length, {c['vocab_size']}]`) and `present.{{i}}.key|value`. Position ids follow
  Hugging Face: `cumsum(attention_mask) - 1`, padded positions 1, left padding. Loads in transformers.js (`dtype: 'fp32'`).
- **Sampling defaults** (`generation_config.json`): temperature {gc['temperature']}, top-k {gc['top_k']}, top-p {gc['top_p']},
  repetition penalty {gc['repetition_penalty']}, up to {gc['max_new_tokens']} new tokens; EOS ends a quote.

It writes quote-shaped English with the corpus's punctuation and rhythm; it is a few-million-parameter model trained for
minutes, so the content is often nonsensical, and greedy decoding tends to repeat itself.

Samples (torch, KV cache; greedy, then sampled with the defaults, seed {SEED}; ⏎ is a newline):

{lines}

Rebuild: `/usr/bin/python3 tools/train_tokenizer.py && /usr/bin/python3 tools/train_lm.py`
(`LM_MINUTES=17` is the default wall-clock budget, so the step count depends on the machine's speed and load;
this run used {torch.get_num_threads()} torch thread(s) (`TRAIN_THREADS`, default 2; one is faster on a machine busy with other work);
`{repro}/usr/bin/python3 tools/train_lm.py` trains exactly that many steps with the schedule spread over steps instead
of time: seeded, bit-for-bit repeatable on the same machine and thread count).
""")


if __name__ == '__main__':
    main()
