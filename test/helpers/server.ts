import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { type Config, configWith } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { type App, buildApp } from '../../src/server/app.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const SHIPPED_MODELS = join(ROOT, 'models');
export const FIXTURE_MODELS = join(ROOT, 'test', 'fixtures', 'models');

export interface GqlResponse<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: Record<string, any>; path?: (string | number)[] }[];
}

export interface TestServer {
  app: App;
  port: number;
  url: string;
  wsUrl: string;
  gql<T = any>(query: string, variables?: Record<string, unknown>, init?: RequestInit): Promise<GqlResponse<T>>;
  ws(connectionParams?: Record<string, unknown>): Client;
  stop(): Promise<void>;
}

/** Starts the real server in-process on a random loopback port. */
export async function startServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const config = configWith({
    port: 0,
    host: '127.0.0.1',
    modelsDir: SHIPPED_MODELS,
    dataDir: mkdtempSync(join(tmpdir(), 'inferql-data-')),
    logLevel: 'silent',
    ...overrides,
  });
  const app = await buildApp(config, createLogger(config.logLevel));
  const { port, url } = await app.start();
  const clients: Client[] = [];
  return {
    app,
    port,
    url,
    wsUrl: url.replace('http', 'ws'),
    gql: (query, variables, init) => gql(url, query, variables, init),
    ws: (connectionParams) => {
      const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true });
      clients.push(client);
      return client;
    },
    stop: async () => {
      await Promise.all(clients.map((c) => c.dispose()));
      await app.stop();
    },
  };
}

export async function gql<T = any>(url: string, query: string, variables?: Record<string, unknown>, init: RequestInit = {}): Promise<GqlResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    ...init,
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...(init.headers as Record<string, string>) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Omit<GqlResponse<T>, 'status'>;
  return { status: response.status, ...body };
}

/** A models folder in a temp dir: copies of shipped or fixture models, inferql.json patched per model. */
export function modelsDir(models: Record<string, { from?: string; inferql?: Record<string, unknown> }>): string {
  const dir = mkdtempSync(join(tmpdir(), 'inferql-models-'));
  for (const [name, spec] of Object.entries(models)) {
    const source = spec.from ?? join(SHIPPED_MODELS, name);
    const target = join(dir, name);
    cpSync(source, target, { recursive: true });
    if (spec.inferql) {
      const path = join(target, 'inferql.json');
      let current: Record<string, unknown> = {};
      try {
        current = JSON.parse(readFileSync(path, 'utf8'));
      } catch {}
      writeFileSync(path, JSON.stringify({ ...current, ...spec.inferql }));
    }
  }
  return dir;
}

/**
 * Makes a decoder in a models folder unable to end on its own (its
 * end-of-sequence id can never be produced), so a generation runs to
 * maxTokens whatever the weights say: for tests that need a long stream.
 */
export function withoutEos(dir: string, model = 'fortune-lm'): string {
  for (const file of ['config.json', 'generation_config.json']) {
    const path = join(dir, model, file);
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), eos_token_id: -1 }));
  }
  return dir;
}

/** Collects a graphql-ws subscription's events until it completes. */
export function subscribeAll<T = any>(client: Client, query: string, variables?: Record<string, unknown>): Promise<{ events: T[]; errors: unknown[] }> {
  return new Promise((resolveAll) => {
    const events: T[] = [];
    const errors: unknown[] = [];
    client.subscribe<T>(
      { query, variables },
      {
        next: (value) => {
          if (value.errors) errors.push(...value.errors);
          if (value.data) events.push(value.data as T);
        },
        error: (error) => {
          errors.push(error);
          resolveAll({ events, errors });
        },
        complete: () => resolveAll({ events, errors }),
      },
    );
  });
}

/** A subscription over SSE (`Accept: text/event-stream`): yields each `next` payload. */
export async function* sse<T = any>(url: string, query: string, variables?: Record<string, unknown>, init: RequestInit = {}): AsyncGenerator<{ data?: T; errors?: any[] }> {
  const response = await fetch(url, {
    method: 'POST',
    ...init,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(init.headers as Record<string, string>) },
    body: JSON.stringify({ query, variables }),
  });
  if (!response.body) throw new Error(`no SSE body (status ${response.status})`);
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      if (event === 'complete') return;
      if (data) yield JSON.parse(data);
    }
  }
}
