"""The fortunes corpus (Debian package `fortunes`): quotes by topic file, with a fixed held-out split."""
import hashlib
import os

FORTUNES = '/usr/share/games/fortunes'
MAX_CHARS = 800


def read_topic(name):
    with open(os.path.join(FORTUNES, name), encoding='utf-8', errors='replace') as f:
        raw = f.read()
    quotes = []
    for block in raw.split('\n%\n'):
        text = block.strip('\n%').rstrip()
        if 0 < len(text) <= MAX_CHARS and '\x1b' not in text and '\x08' not in text:
            quotes.append(text)
    return quotes


def topics():
    names = []
    for name in sorted(os.listdir(FORTUNES)):
        path = os.path.join(FORTUNES, name)
        if '.' in name or os.path.islink(path) or not os.path.isfile(path):
            continue
        names.append(name)
    return names


def is_held_out(text, percent=5):
    """A quote's split depends only on its text: stable across runs and machines."""
    return int(hashlib.sha256(text.encode('utf-8')).hexdigest()[:8], 16) % 100 < percent


def all_quotes():
    seen = set()
    out = []
    for name in topics():
        for q in read_topic(name):
            if q not in seen:
                seen.add(q)
                out.append((name, q))
    return out
