import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startProcess } from '../helpers/process.js';
import { modelsDir, ROOT, withoutEos } from '../helpers/server.js';

/** SIGTERM as an operator sends it, to the server in its own process. */
describe('graceful shutdown', () => {
  it('SIGTERM: a stream still running after the grace period ends with CANCELLED, and the process exits 0', async () => {
    const server = await startProcess({ MODELS_DIR: withoutEos(modelsDir({ 'fortune-lm': {} })), DATA_DIR: mkdtempSync(join(tmpdir(), 'inferql-stop-')), SHUTDOWN_GRACE_MS: '300', MAX_TOKENS: '100000' });
    const client = createClient({ url: server.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const events: any[] = [];
    let first!: () => void;
    const started = new Promise<void>((r) => (first = r));
    const long = new Promise<void>((resolve) => {
      client.subscribe<{ generate: any }>(
        { query: 'subscription { generate(model: "fortune-lm", prompt: "Once", params: { maxTokens: 100000, temperature: 1, seed: 1 }) { index finishReason } }' },
        {
          next: ({ data }) => {
            events.push(data!.generate);
            if (events.length === 1) first();
          },
          error: () => resolve(),
          complete: () => resolve(),
        },
      );
    });
    await started;
    server.child.kill('SIGTERM');
    await long;
    expect(events.at(-1).finishReason).toBe('CANCELLED');
    expect(events.length).toBeGreaterThan(1);
    expect(await server.exited).toBe(0);
    expect(server.log()).toContain('stopped cleanly');
    await client.dispose();
  });

  it('a new connection after SIGTERM is refused while in-flight work drains', async () => {
    const server = await startProcess({ MODELS_DIR: join(ROOT, 'models'), DATA_DIR: mkdtempSync(join(tmpdir(), 'inferql-stop-')), SHUTDOWN_GRACE_MS: '2000' });
    const client = createClient({ url: server.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const events: any[] = [];
    let firstEvent!: () => void;
    const started = new Promise<void>((r) => (firstEvent = r));
    const stream = new Promise<unknown[]>((resolve) => {
      const errors: unknown[] = [];
      client.subscribe<{ generate: any }>(
        { query: 'subscription { generate(model: "fortune-lm", prompt: "Twice", params: { maxTokens: 60, temperature: 0 }) { index finishReason } }' },
        {
          next: ({ data }) => {
            events.push(data);
            firstEvent();
          },
          error: (e) => resolve([...errors, e]),
          complete: () => resolve(errors),
        },
      );
    });
    await started;
    server.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    await expect(fetch(server.url.replace('/graphql', '/health'))).rejects.toThrow();
    expect(await stream).toEqual([]);
    expect(['STOP', 'LENGTH']).toContain(events.at(-1).generate.finishReason);
    expect(await server.exited).toBe(0);
    await client.dispose();
  });
});
