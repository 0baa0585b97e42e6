import { join } from 'node:path';
import { Lexer, Source, TokenKind } from 'graphql';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TextTokenizer } from '../../src/models/tokenizer.js';
import { modelsDir, SHIPPED_MODELS, type TestServer, startServer, subscribeAll } from '../helpers/server.js';

/** Every limit: at the limit passes, one over fails with its code, and the server keeps serving. */

function tokenCount(document: string): number {
  const lexer = new Lexer(new Source(document));
  let n = 0;
  while (lexer.advance().kind !== TokenKind.EOF) n++;
  return n;
}

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    modelsDir: modelsDir({ digits: {} }),
    maxDepth: 2,
    maxAliases: 2,
    maxDirectives: 1,
    maxTokensPerDocument: 60,
    maxBodyBytes: 4096,
    maxTensorElements: 64,
    introspection: false,
    maxSubscriptionsPerKey: 2,
    maxSocketsPerKey: 3,
  });
});
afterAll(async () => {
  await server?.stop();
});

const code = (res: { errors?: { extensions?: Record<string, unknown> }[] }) => res.errors?.[0]?.extensions?.code;

describe('query limits (graphql-armor)', () => {
  it('depth', async () => {
    expect((await server.gql('{ models { name } }')).errors).toBeUndefined();
    expect(code(await server.gql('{ models { inputs { name } } }'))).toBe('QUERY_LIMIT');
  });

  it('aliases', async () => {
    expect((await server.gql('{ a: models { name } b: models { name } }')).errors).toBeUndefined();
    expect(code(await server.gql('{ a: models { name } b: models { name } c: models { name } }'))).toBe('QUERY_LIMIT');
  });

  it('directives', async () => {
    expect((await server.gql('{ models @skip(if: false) { name } }')).errors).toBeUndefined();
    expect(code(await server.gql('{ models @skip(if: false) { name @include(if: true) } }'))).toBe('QUERY_LIMIT');
  });

  it('cost', async () => {
    const query = '{ models { name version } }';
    const heavier = '{ models { name version task } }';
    // The document's cost as graphql-armor counts it, read from its refusal by a server that allows 1.
    const probe = await startServer({ modelsDir: modelsDir({ digits: {} }), maxCost: 1 });
    const refusal = await probe.gql(query);
    await probe.stop();
    expect(code(refusal)).toBe('QUERY_LIMIT');
    const cost = Number(/found (\d+)/.exec(refusal.errors![0]!.message)![1]);
    expect(cost).toBeGreaterThan(1);
    const exact = await startServer({ modelsDir: modelsDir({ digits: {} }), maxCost: cost });
    try {
      expect((await exact.gql(query)).errors).toBeUndefined();
      expect(code(await exact.gql(heavier))).toBe('QUERY_LIMIT');
    } finally {
      await exact.stop();
    }
  });

  it('tokens', async () => {
    const build = (n: number) => `{ models { name ${Array.from({ length: n }, () => 'name').join(' ')} } }`;
    const exactly = build(60 - tokenCount(build(0)));
    expect(tokenCount(exactly)).toBe(60);
    expect((await server.gql(exactly)).errors).toBeUndefined();
    const over = build(61 - tokenCount(build(0)));
    expect(code(await server.gql(over))).toBe('QUERY_LIMIT');
  });

  it('introspection is refused and field suggestions are hidden when introspection is off', async () => {
    expect((await server.gql('{ __schema { queryType { name } } }')).errors?.[0]?.message).toMatch(/introspection/i);
    const typo = await server.gql('{ modelz { name } }');
    expect(typo.errors?.[0]?.message).not.toMatch(/did you mean/i);
  });
});

describe('request limits', () => {
  it('body size: at the limit passes, one byte over is 413 PAYLOAD_TOO_LARGE', async () => {
    const body = (size: number) => {
      const base = JSON.stringify({ query: '{ models { name } }' });
      return `${base.slice(0, -1)}${' '.repeat(size - base.length)}}`;
    };
    const post = (b: string) => fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b });
    expect(body(4096).length).toBe(4096);
    expect((await post(body(4096))).status).toBe(200);
    const over = await post(body(4097));
    expect(over.status).toBe(413);
    expect(((await over.json()) as any).errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('tensor elements: at the limit passes, one row over is BAD_TENSOR', async () => {
    const infer = (rows: number) =>
      server.gql(`mutation ($d: [Float!]!, $s: [Int!]!) { infer(model: "digits", inputs: [{ name: "pixels", datatype: FP32, shape: $s, data: $d }]) { __typename } }`, {
        d: new Array(rows * 64).fill(1),
        s: [rows, 64],
      });
    expect((await infer(1)).errors).toBeUndefined();
    expect(code(await infer(2))).toBe('BAD_TENSOR');
  });
});

describe('generation limits', () => {
  const GENERATE = 'mutation ($p: String!, $n: Int) { generate(model: "fortune-lm", prompt: $p, params: { maxTokens: $n, temperature: 0 }) { usage { promptTokens completionTokens } } }';
  let lm: TestServer;
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    lm = await startServer({ modelsDir: modelsDir({ 'fortune-lm': {} }), maxTokens: 8, maxPromptTokens: 6 });
    tokenizer = await TextTokenizer.load(join(SHIPPED_MODELS, 'fortune-lm', 'tokenizer.json'), join(SHIPPED_MODELS, 'fortune-lm', 'tokenizer_config.json'));
  });
  afterAll(async () => {
    await lm?.stop();
  });

  it('prompt tokens: a prompt of exactly MAX_PROMPT_TOKENS passes, one token more is BAD_GENERATION_PARAMS', async () => {
    // The shortest prefix of a sentence that encodes (with its BOS) to exactly 6 tokens, then to 7.
    const sentence = 'The cat sat on the mat, and then it slept all afternoon in the sun.';
    const promptOf = (tokens: number) => {
      for (let n = 1; n <= sentence.length; n++) {
        if (tokenizer.encode(sentence.slice(0, n)).length === tokens) return sentence.slice(0, n);
      }
      throw new Error(`no prompt of ${tokens} tokens`);
    };
    const exactly = await lm.gql(GENERATE, { p: promptOf(6), n: 1 });
    expect(exactly.errors).toBeUndefined();
    expect(exactly.data.generate.usage.promptTokens).toBe(6);
    const over = await lm.gql(GENERATE, { p: promptOf(7), n: 1 });
    expect(code(over)).toBe('BAD_GENERATION_PARAMS');
    expect(over.errors![0]!.extensions).toMatchObject({ param: 'prompt', promptTokens: 7 });
  });

  it('maxTokens: MAX_TOKENS passes, one more is BAD_GENERATION_PARAMS', async () => {
    const exactly = await lm.gql(GENERATE, { p: 'Once', n: 8 });
    expect(exactly.errors).toBeUndefined();
    expect(exactly.data.generate.usage.completionTokens).toBeLessThanOrEqual(8);
    const over = await lm.gql(GENERATE, { p: 'Once', n: 9 });
    expect(code(over)).toBe('BAD_GENERATION_PARAMS');
    expect(over.errors![0]!.extensions).toMatchObject({ param: 'maxTokens' });
  });
});

describe('per-key caps on WebSocket', () => {
  it('subscriptions: the third open one on a key is TOO_MANY_CONNECTIONS; closing one frees a place', async () => {
    const client = server.ws();
    const stops: (() => void)[] = [];
    for (let i = 0; i < 2; i++) stops.push(client.subscribe({ query: 'subscription { modelEvents { model } }' }, { next: () => {}, error: () => {}, complete: () => {} }));
    await new Promise((r) => setTimeout(r, 200));
    const third = await subscribeAll(client, 'subscription { modelEvents { model } }');
    expect(JSON.stringify(third.errors)).toContain('TOO_MANY_CONNECTIONS');
    stops[0]!();
    await new Promise((r) => setTimeout(r, 100));
    const query = await subscribeAll(client, '{ models { name } }');
    expect(query.errors).toEqual([]);
    stops[1]!();
  });

  it('sockets: the fourth open socket from one caller is closed with 4429; closing one frees a place', async () => {
    const connect = () =>
      new Promise<{ client: ReturnType<typeof createClient>; code: number | null }>((resolve) => {
        const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, onNonLazyError: () => {} });
        client.on('connected', () => resolve({ client, code: null }));
        client.on('closed', (event) => resolve({ client, code: (event as { code: number }).code }));
      });
    const open = [await connect(), await connect(), await connect()];
    expect(open.map((o) => o.code)).toEqual([null, null, null]);
    const refused = await connect();
    expect(refused.code).toBe(4429);
    await open[0]!.client.dispose();
    await new Promise((r) => setTimeout(r, 100));
    const again = await connect();
    expect(again.code).toBeNull();
    for (const c of [...open.slice(1), again, refused]) await c.client.dispose();
  });
});

describe('rate limit', () => {
  it('a key gets its burst, then RATE_LIMITED with a retry hint', async () => {
    const limited = await startServer({ modelsDir: modelsDir({ digits: {} }), rateLimitPerSecond: 1, rateLimitBurst: 3 });
    try {
      for (let i = 0; i < 3; i++) expect((await limited.gql('{ models { name } }')).errors).toBeUndefined();
      const refused = await limited.gql('{ models { name } }');
      expect(refused.status).toBe(429);
      expect(code(refused)).toBe('RATE_LIMITED');
      expect(refused.errors?.[0]?.extensions?.retryAfterMs).toBeGreaterThan(0);
    } finally {
      await limited.stop();
    }
  });
});
