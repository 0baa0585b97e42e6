// models/SHA256SUMS (written by tools/manifest.py) lists every shipped model file with its SHA-256.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MODELS } from './lm.js';

const manifest = readFileSync(join(MODELS, 'SHA256SUMS'), 'utf8')
  .split('\n')
  .filter((line) => line.length > 0)
  .map((line) => {
    const match = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (!match) throw new Error(`not a sha256sum line: ${line}`);
    return { hash: match[1], path: match[2] };
  });

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

describe('models/SHA256SUMS', () => {
  it('has the SHA-256 of every listed file', () => {
    expect(manifest.length).toBeGreaterThan(0);
    for (const { hash, path } of manifest) {
      const actual = createHash('sha256').update(readFileSync(join(MODELS, path))).digest('hex');
      expect(actual, path).toBe(hash);
    }
  });

  it('lists every file shipped under models/*/ and nothing twice', () => {
    const shipped = readdirSync(MODELS)
      .filter((name) => statSync(join(MODELS, name)).isDirectory())
      .flatMap((name) => walk(join(MODELS, name)))
      .map((path) => relative(MODELS, path).split(sep).join('/'))
      .sort();
    const listed = manifest.map((entry) => entry.path);
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort()).toEqual(shipped);
  });

  it('covers the three models, each file under 20 MB', () => {
    const listed = manifest.map((entry) => entry.path);
    for (const name of ['digits', 'fortune-topic', 'fortune-lm']) {
      expect(listed).toContain(`${name}/onnx/model.onnx`);
      expect(listed).toContain(`${name}/README.md`);
      expect(listed).toContain(`${name}/inferql.json`);
    }
    for (const path of listed) expect(statSync(join(MODELS, path)).size, path).toBeLessThan(20 * 1024 * 1024);
  });
});
