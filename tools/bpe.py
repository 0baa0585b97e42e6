"""A byte-level BPE tokenizer trainer that writes the Hugging Face tokenizers JSON format.

The `tokenizers` Python package is not available here, so training is done
by hand: GPT-2 pre-tokenization, byte-to-unicode alphabet, greedy merges of
the most frequent pair (ties broken by the pair itself, so it is
deterministic). Encoding in Python follows the same rules as the JSON file,
and the test suite checks it against @huggingface/tokenizers.
"""
import heapq
from collections import Counter, defaultdict

import regex

GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

PAD, BOS, EOS = '<|pad|>', '<|bos|>', '<|eos|>'
SPECIAL_TOKENS = [PAD, BOS, EOS]


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_TO_CHAR = bytes_to_unicode()


def pretokenize(text):
    return [''.join(BYTE_TO_CHAR[b] for b in piece.encode('utf-8')) for piece in GPT2_PATTERN.findall(text)]


def train(texts, vocab_size):
    """Returns (vocab: token -> id, merges: list of (a, b))."""
    word_counts = Counter()
    for text in texts:
        word_counts.update(pretokenize(text))
    words = [list(w) for w in word_counts]
    freqs = [word_counts[w] for w in word_counts]

    pair_counts = Counter()
    where = defaultdict(set)
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(BYTE_TO_CHAR.values()):
        vocab[ch] = len(vocab)
    merges = []
    while len(vocab) < vocab_size and heap:
        count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -count or count == 0:
            continue
        merged = pair[0] + pair[1]
        merges.append(pair)
        vocab[merged] = len(vocab)
        changed = Counter()
        for i in list(where[pair]):
            word = words[i]
            f = freqs[i]
            for p in zip(word, word[1:]):
                pair_counts[p] -= f
                changed[p] += 0
            j = 0
            out = []
            while j < len(word):
                if j < len(word) - 1 and word[j] == pair[0] and word[j + 1] == pair[1]:
                    out.append(merged)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += f
                where[p].add(i)
                changed[p] += 0
        del pair_counts[pair]
        where.pop(pair, None)
        for p in changed:
            if p != pair and pair_counts.get(p, 0) > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    return vocab, merges


class Encoder:
    """Encodes text exactly as the JSON tokenizer does (BOS added by the post-processor)."""

    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.cache = {}

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = min(((self.ranks.get(p, 1 << 30), k) for k, p in enumerate(zip(parts, parts[1:]))), default=None)
            if best is None or best[0] == 1 << 30:
                break
            k = best[1]
            parts = parts[:k] + [parts[k] + parts[k + 1]] + parts[k + 2:]
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text, add_bos=True):
        ids = [self.vocab[BOS]] if add_bos else []
        for word in pretokenize(text):
            ids.extend(self._bpe(word))
        return ids


def tokenizer_json(vocab, merges):
    added = [
        {'id': vocab[t], 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True}
        for t in SPECIAL_TOKENS
    ]
    bos = {'SpecialToken': {'id': BOS, 'type_id': 0}}
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': added,
        'normalizer': None,
        'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [bos, {'Sequence': {'id': 'A', 'type_id': 0}}],
            'pair': [bos, {'Sequence': {'id': 'A', 'type_id': 0}}, bos, {'Sequence': {'id': 'B', 'type_id': 1}}],
            'special_tokens': {BOS: {'id': BOS, 'ids': [vocab[BOS]], 'tokens': [BOS]}},
        },
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
        'model': {
            'type': 'BPE',
            'dropout': None,
            'unk_token': None,
            'continuing_subword_prefix': None,
            'end_of_word_suffix': None,
            'fuse_unk': False,
            'byte_fallback': False,
            'ignore_merges': False,
            'vocab': vocab,
            'merges': [f'{a} {b}' for a, b in merges],
        },
    }


def tokenizer_config(max_length):
    return {
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'bos_token': BOS,
        'eos_token': EOS,
        'pad_token': PAD,
        'unk_token': None,
        'add_bos_token': True,
        'add_eos_token': False,
        'clean_up_tokenization_spaces': False,
        'model_max_length': max_length,
    }
