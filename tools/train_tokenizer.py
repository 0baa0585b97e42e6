"""Trains the byte-level BPE tokenizer shared by fortune-lm and fortune-topic.

Trained on the training split of the whole fortunes corpus; writes
tokenizer.json (Hugging Face format, BOS-adding post-processor) and
tokenizer_config.json into both model folders.

Run: /usr/bin/python3 tools/train_tokenizer.py
"""
import os
import time

import bpe
from common import model_dir, write_json
from corpus import all_quotes, is_held_out

VOCAB_SIZE = 4096
MAX_LENGTH = 512


def main():
    started = time.time()
    texts = [q for _, q in all_quotes() if not is_held_out(q)]
    vocab, merges = bpe.train(texts, VOCAB_SIZE)
    for name in ('fortune-lm', 'fortune-topic'):
        out = model_dir(name)
        write_json(os.path.join(out, 'tokenizer.json'), bpe.tokenizer_json(vocab, merges))
        write_json(os.path.join(out, 'tokenizer_config.json'), bpe.tokenizer_config(MAX_LENGTH))
    print(f'tokenizer: {len(vocab)} tokens ({len(merges)} merges) from {len(texts)} quotes in {time.time() - started:.1f}s')


if __name__ == '__main__':
    main()
