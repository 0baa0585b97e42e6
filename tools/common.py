"""Shared helpers for the model build scripts (build time only; /usr/bin/python3)."""
import hashlib
import json
import os
import random

import numpy as np
import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
MODELS = os.path.join(ROOT, 'models')


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Debian's torch starts with one thread. On a loaded machine two OpenMP threads can be several times
    # slower than one (threads wait for each other at every barrier): TRAIN_THREADS=1 then helps.
    torch.set_num_threads(int(os.environ.get('TRAIN_THREADS', 2)))


def model_dir(name: str) -> str:
    path = os.path.join(MODELS, name)
    os.makedirs(path, exist_ok=True)
    return path


def write_json(path: str, value) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write('\n')


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
