"""Trains models/fortune-topic: which fortunes file a quote comes from.

A small transformer encoder over the shared BPE tokenizer (run
tools/train_tokenizer.py first): `input_ids` + `attention_mask` int64
[batch_size, sequence_length] → `logits` [batch_size, num_labels].
Padding is masked in attention and pooling, so a padded quote scores
the same as the quote alone.

Run: /usr/bin/python3 tools/train_topic.py
"""
import json
import math
import os
import time

import numpy as np
import onnx
import torch
from torch import nn

import bpe
from common import count_params, model_dir, seed_everything, write_json
from corpus import is_held_out, read_topic

SEED = 0
LABELS = ['computers', 'definitions', 'men-women', 'politics', 'science', 'songs-poems', 'work', 'zippy']
MAX_LEN = 128
EPOCHS = int(os.environ.get('EPOCHS', 5))
HIDDEN, HEADS, FFN, LAYERS = 256, 4, 1024, 2


def sinusoidal(length):
    """Fixed sine/cosine positions computed in the graph, so any input length works."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(0, HIDDEN, 2, dtype=torch.float32) * (-math.log(10000.0) / HIDDEN))
    return torch.cat((torch.sin(pos * inv), torch.cos(pos * inv)), dim=-1)[None, :, :]


class EncoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(HIDDEN, 3 * HIDDEN)
        self.out = nn.Linear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN)
        self.ff = nn.Sequential(nn.Linear(HIDDEN, FFN), nn.GELU(), nn.Linear(FFN, HIDDEN))

    def forward(self, x, bias):
        b, s, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, HEADS, HIDDEN // HEADS).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HIDDEN // HEADS) + bias
        h = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).reshape(b, s, HIDDEN)
        x = x + self.out(h)
        return x + self.ff(self.ln2(x))


class TopicClassifier(nn.Module):
    def __init__(self, vocab_size, num_labels):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, HIDDEN)
        self.layers = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(HIDDEN)
        self.head = nn.Linear(HIDDEN, num_labels)
        self.drop = nn.Dropout(0.1)

    def forward(self, input_ids, attention_mask):
        x = self.drop(self.embed(input_ids) + sinusoidal(input_ids.shape[1]))
        mask = attention_mask.to(x.dtype)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        x = self.norm(x)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.head(self.drop(pooled))


def batchify(rows):
    length = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def length_bucketed_batches(rows, rng, batch=32, pool=20):
    """Shuffled batches of similar-length quotes (less padding, same distribution)."""
    order = rng.permutation(len(rows))
    batches = []
    for i in range(0, len(order), batch * pool):
        chunk = sorted(order[i:i + batch * pool], key=lambda j: len(rows[j][0]))
        batches.extend([rows[j] for j in chunk[k:k + batch]] for k in range(0, len(chunk), batch))
    return [batches[k] for k in rng.permutation(len(batches))]


def main():
    seed_everything(SEED)
    out = model_dir('fortune-topic')
    with open(os.path.join(out, 'tokenizer.json'), encoding='utf-8') as f:
        tj = json.load(f)
    encoder = bpe.Encoder(tj['model']['vocab'], [tuple(m.split(' ')) for m in tj['model']['merges']])
    train, test = [], []
    for label, name in enumerate(LABELS):
        for q in read_topic(name):
            row = (encoder.encode(q)[:MAX_LEN], label)
            (test if is_held_out(q, percent=15) else train).append(row)
    print(f'{len(train)} training and {len(test)} held-out quotes')

    model = TopicClassifier(len(tj['model']['vocab']), len(LABELS))
    params = count_params(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps = EPOCHS * math.ceil(len(train) / 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    started, started_cpu = time.time(), time.process_time()
    rng = np.random.default_rng(SEED)
    for epoch in range(EPOCHS):
        model.train()
        for rows in length_bucketed_batches(train, rng):
            ids, mask = batchify([r for r, _ in rows])
            loss = nn.functional.cross_entropy(model(ids, mask), torch.tensor([l for _, l in rows]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f'epoch {epoch} loss {loss.item():.3f} {time.time() - started:.0f}s', flush=True)
    seconds, cpu_seconds = time.time() - started, time.process_time() - started_cpu

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test), 64):
            rows = test[i:i + 64]
            ids, mask = batchify([r for r, _ in rows])
            correct += int((model(ids, mask).argmax(-1) == torch.tensor([l for _, l in rows])).sum())
    accuracy = correct / len(test)
    counts = np.bincount([l for _, l in test], minlength=len(LABELS))
    majority = counts.max() / len(test)
    print(f'{params} params')
    print(f'accuracy {accuracy:.4f} vs majority baseline {majority:.4f} ({LABELS[int(counts.argmax())]})')

    os.makedirs(os.path.join(out, 'onnx'), exist_ok=True)
    onnx_path = os.path.join(out, 'onnx', 'model.onnx')
    ids, mask = batchify([[1, 5, 6, 7], [1, 8]])
    with torch.no_grad():  # padding must not change the result
        alone = model(ids[1:, :2], mask[1:, :2])
        padded = model(ids, mask)[1:]
        assert torch.allclose(alone, padded, atol=1e-5), (alone, padded)
    torch.onnx.export(
        model, (ids, mask), onnx_path,
        input_names=['input_ids', 'attention_mask'], output_names=['logits'],
        dynamic_axes={'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'sequence_length'}, 'logits': {0: 'batch_size'}},
        opset_version=17,
    )
    onnx.checker.check_model(onnx.load(onnx_path))
    write_json(os.path.join(out, 'inferql.json'), {
        'task': 'CLASSIFICATION', 'version': '1', 'labels': LABELS,
        'batching': {'maxBatchSize': 64, 'maxQueueDelayMs': 2},
        'text': {'maxLength': MAX_LEN},
    })
    with open(os.path.join(out, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(f"""# fortune-topic

Which fortunes file a quote comes from, out of {len(LABELS)}: {', '.join(LABELS)}.
A {LAYERS}-layer pre-norm transformer encoder (hidden {HIDDEN}, {HEADS} heads, GELU feed-forward {FFN}, fixed sinusoidal
positions computed in the graph, so any input length works) with masked mean pooling; {params:,} parameters
({os.path.getsize(onnx_path) / 1e6:.1f} MB ONNX, opset 17). Same {len(tj['model']['vocab'])}-token byte-level BPE tokenizer as fortune-lm
(`tokenizer.json` here is a copy).

- **Data**: Debian's `fortunes` corpus (`/usr/share/games/fortunes`), the files named above (the label is the file);
  quotes of at most 800 characters, truncated to {MAX_LEN} tokens (`inferql.json` tells the server to truncate likewise).
- **Split**: a quote is held out when the first 32 bits of its SHA-256 mod 100 are < 15:
  {len(train)} training, {len(test)} held-out quotes.
- **Input**: `input_ids`, `attention_mask` int64 `[batch_size, sequence_length]` (BOS first, as the tokenizer adds it);
  padding (mask 0) is ignored by attention and pooling, so a right-padded quote scores the same as the quote alone.
  **Output**: `logits` float32 `[batch_size, {len(LABELS)}]`, in the order of `labels` in `inferql.json`.
- **Training**: AdamW with a one-cycle schedule (max lr 1e-3), {EPOCHS} epochs of batch 32 (length-bucketed), dropout 0.1, seed {SEED};
  {seconds / 60:.1f} minutes wall on 2 shared CPU cores ({cpu_seconds / 60:.1f} CPU-minutes).
- **Held-out accuracy**: {accuracy:.4f}; majority-class baseline {majority:.4f} (always "{LABELS[int(counts.argmax())]}").

Rebuild: `/usr/bin/python3 tools/train_tokenizer.py && /usr/bin/python3 tools/train_topic.py`.
""")


if __name__ == '__main__':
    main()
