"""Writes models/SHA256SUMS: the SHA-256 of every shipped file under models/*/, in `sha256sum` format.

Paths are relative to models/ (check with `cd models && sha256sum -c SHA256SUMS`).
test/models/manifest.test.ts recomputes the sums and checks that nothing is missing.

Run: /usr/bin/python3 tools/manifest.py
"""
import os

from common import MODELS, sha256


def shipped_files():
    files = []
    for name in sorted(os.listdir(MODELS)):
        folder = os.path.join(MODELS, name)
        if not os.path.isdir(folder):
            continue
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for f in sorted(filenames):
                files.append(os.path.relpath(os.path.join(dirpath, f), MODELS).replace(os.sep, '/'))
    return sorted(files)


def main():
    lines = [f'{sha256(os.path.join(MODELS, rel))}  {rel}\n' for rel in shipped_files()]
    with open(os.path.join(MODELS, 'SHA256SUMS'), 'w', encoding='utf-8') as f:
        f.writelines(lines)
    print(f'models/SHA256SUMS: {len(lines)} files')


if __name__ == '__main__':
    main()
