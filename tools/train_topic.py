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
import torch
from torch import nn

import bpe
from common import count_params, model_dir, seed_everything, write_json
from corpus import is_held_out, read_topic

SEED = 0
LABELS = ['computers', 'definitions', 'men-women', 'politics', 'science', 'songs-poems', 'work', 'zippy']
MAX_LEN = 128
EPOCHS = int(os.environ.get('EPOCHS', 6))
HIDDEN, HEADS, FFN, LAYERS = 192, 4, 512, 2


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
        self.pos = nn.Embedding(MAX_LEN, HIDDEN)
        self.layers = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(HIDDEN)
        self.head = nn.Linear(HIDDEN, num_labels)
        self.drop = nn.Dropout(0.1)

    def forward(self, input_ids, attention_mask):
        s = input_ids.shape[1]
        positions = torch.arange(s, device=input_ids.device)[None, :]
        x = self.drop(self.embed(input_ids) + self.pos(positions))
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
    started = time.time()
    rng = np.random.default_rng(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = rng.permutation(len(train))
        for i in range(0, len(order), 32):
            rows = [train[j] for j in order[i:i + 32]]
            ids, mask = batchify([r for r, _ in rows])
            loss = nn.functional.cross_entropy(model(ids, mask), torch.tensor([l for _, l in rows]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f'epoch {epoch} loss {loss.item():.3f} {time.time() - started:.0f}s', flush=True)
    seconds = time.time() - started

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
    print(f'accuracy {accuracy:.4f} vs majority baseline {majority:.4f} ({LABELS[int(counts.argmax())]})')

    os.makedirs(os.path.join(out, 'onnx'), exist_ok=True)
    ids, mask = batchify([[1, 5, 6, 7], [1, 8]])
    torch.onnx.export(
        model, (ids, mask), os.path.join(out, 'onnx', 'model.onnx'),
        input_names=['input_ids', 'attention_mask'], output_names=['logits'],
        dynamic_axes={'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'sequence_length'}, 'logits': {0: 'batch_size'}},
        opset_version=17,
    )
    write_json(os.path.join(out, 'inferql.json'), {
        'task': 'CLASSIFICATION', 'version': '1', 'labels': LABELS,
        'batching': {'maxBatchSize': 64, 'maxQueueDelayMs': 2},
        'text': {'maxLength': MAX_LEN},
    })
    with open(os.path.join(out, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(f"""# fortune-topic

Which fortunes file a quote comes from, out of {len(LABELS)}: {', '.join(LABELS)}.
A {LAYERS}-layer pre-norm transformer encoder (hidden {HIDDEN}, {HEADS} heads, feed-forward {FFN}, learned positions up to
{MAX_LEN} tokens) with masked mean pooling; {params:,} parameters. Same byte-level BPE tokenizer as fortune-lm.

- **Data**: Debian's `fortunes` corpus, the files named above; quotes of at most 800 characters, truncated to {MAX_LEN} tokens.
- **Split**: a quote is held out when the first 32 bits of its SHA-256 mod 100 are < 15:
  {len(train)} training, {len(test)} held-out quotes.
- **Input**: `input_ids`, `attention_mask` int64 `[batch_size, sequence_length]` (BOS first, as the tokenizer adds it);
  padding (mask 0) is ignored by attention and pooling. **Output**: `logits` float32 `[batch_size, {len(LABELS)}]`.
- **Training**: AdamW with a one-cycle schedule (max lr 1e-3), {EPOCHS} epochs of batch 32, seed {SEED};
  {seconds / 60:.1f} minutes on 2 CPU cores.
- **Held-out accuracy**: {accuracy:.4f}; majority-class baseline {majority:.4f} (always "{LABELS[int(counts.argmax())]}").

Rebuild: `/usr/bin/python3 tools/train_tokenizer.py && /usr/bin/python3 tools/train_topic.py`.
""")


if __name__ == '__main__':
    main()
