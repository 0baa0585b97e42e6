import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, OPTIONS } from '../../src/config.js';
import { ERROR_CODES } from '../../src/errors.js';
import { printedSchema } from '../../src/schema/index.js';
import { ROOT } from '../helpers/server.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('schema/schema.graphql', () => {
  it('is the SDL printed from the Pothos schema (run `npm run schema:print` when this fails)', () => {
    expect(readFileSync(join(ROOT, 'schema', 'schema.graphql'), 'utf8')).toBe(printedSchema());
  });
});

describe('documentation', () => {
  it('the README documents every error code', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(README, code).toContain(`\`${code}\``);
  });

  it('the README documents every setting, as flag and env', () => {
    for (const o of OPTIONS) {
      expect(README, o.env).toContain(`\`${o.env}\``);
      expect(README, o.flag).toContain(`\`--${o.flag}\``);
    }
  });
});

describe('config', () => {
  it('reads flags over env over defaults', () => {
    const c = loadConfig(['--port', '5000', '--max-batch-size', '8'], { PORT: '6000', MAX_QUEUE_DELAY_MS: '7', HOST: '0.0.0.0' });
    expect(c).toMatchObject({ port: 5000, maxBatchSize: 8, maxQueueDelayMs: 7, host: '0.0.0.0', role: 'all', command: 'serve' });
  });

  it.each([
    [['--port', 'abc'], {}, /--port: expected an integer/],
    [[], { PORT: '70000' }, /PORT: must be ≤ 65535/],
    [[], { MAX_BATCH_SIZE: '0' }, /MAX_BATCH_SIZE: must be ≥ 1/],
    [[], { LOG_LEVEL: 'loud' }, /LOG_LEVEL: must be one of/],
    [[], { INTROSPECTION: 'maybe' }, /INTROSPECTION: expected true or false/],
    [['--nope'], {}, /Unknown option/],
    [['--role', 'api'], {}, /needs REDIS_URL/],
    [[], { REDIS_URL: 'localhost:6379' }, /REDIS_URL must start with redis:\/\//],
    [[], { REDIS_PREFIX: 'a:b' }, /REDIS_PREFIX must be/],
  ])('rejects %j %j', (argv, env, message) => {
    expect(() => loadConfig(argv, env)).toThrow(ConfigError);
    expect(() => loadConfig(argv, env)).toThrow(message);
  });

  it('a bad value stops `npm start` with a clear message and exit code 2, not a stack trace', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'main.ts')], { env: { ...process.env, PORT: 'eighty' }, encoding: 'utf8', cwd: ROOT });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('inferql: bad configuration: PORT: expected an integer, got "eighty"');
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
