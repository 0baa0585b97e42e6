"""Trains models/digits: an 8x8 digit classifier on scikit-learn's bundled digits data.

Input `pixels` float32 [batch_size, 64] with the raw 0-16 values sklearn gives
(scaling happens inside the graph); output `logits` float32 [batch_size, 10].

Run: /usr/bin/python3 tools/train_digits.py
"""
import os
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from common import count_params, model_dir, seed_everything, write_json

SEED = 0


class DigitsMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Dropout(0.1),
            torch.nn.Linear(256, 128), torch.nn.GELU(),
            torch.nn.Linear(128, 10),
        )

    def forward(self, pixels):
        return self.net(pixels / 16.0)


def main():
    seed_everything(SEED)
    started = time.time()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)
    xt = torch.tensor(X_train, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.long)
    model = DigitsMLP()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    for epoch in range(60):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(X_test, dtype=torch.float32)).argmax(-1).numpy()
    accuracy = float((pred == y_test).mean())
    majority = float(np.bincount(y_test).max() / len(y_test))
    seconds = time.time() - started

    out = model_dir('digits')
    os.makedirs(os.path.join(out, 'onnx'), exist_ok=True)
    torch.onnx.export(
        model, torch.zeros(1, 64), os.path.join(out, 'onnx', 'model.onnx'),
        input_names=['pixels'], output_names=['logits'],
        dynamic_axes={'pixels': {0: 'batch_size'}, 'logits': {0: 'batch_size'}},
        opset_version=17,
    )
    write_json(os.path.join(out, 'inferql.json'), {
        'task': 'CLASSIFICATION', 'version': '1', 'labels': [str(i) for i in range(10)],
        'batching': {'maxBatchSize': 64, 'maxQueueDelayMs': 2},
    })
    params = count_params(model)
    with open(os.path.join(out, 'README.md'), 'w') as f:
        f.write(f"""# digits

An 8×8 handwritten digit classifier (a 64→256→128→10 MLP with GELU, {params:,} parameters).

- **Data**: scikit-learn's bundled `load_digits` (1,797 images of 8×8 pixels, values 0–16).
- **Split**: stratified 80/20, `random_state={SEED}`: {len(X_train)} training, {len(X_test)} held-out images.
- **Input**: `pixels` float32 `[batch_size, 64]`, raw 0–16 values exactly as sklearn gives them (the graph divides by 16).
- **Output**: `logits` float32 `[batch_size, 10]`; labels "0"–"9" in `inferql.json`.
- **Training**: AdamW, 60 epochs, batch 64, seed {SEED}; {seconds:.1f} s on 2 CPU cores.
- **Held-out accuracy**: {accuracy:.4f} (majority-class baseline {majority:.4f}).

Rebuild: `/usr/bin/python3 tools/train_digits.py` (needs Debian's python3-torch, python3-onnx, python3-sklearn).
""")
    print(f'digits: {params} params, accuracy {accuracy:.4f} vs majority {majority:.4f}, {seconds:.1f}s')


if __name__ == '__main__':
    main()
