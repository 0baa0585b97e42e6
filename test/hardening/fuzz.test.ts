import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir, type TestServer, startServer } from '../helpers/server.js';

/**
 * Property-based fuzzing with fast-check: over 10,000 generated tensor
 * inputs, generation parameters and GraphQL documents (deep, aliased, huge,
 * broken). Every answer is a result or errors that each carry
 * `extensions.code`; the server answers /health after each run.
 */

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ modelsDir: modelsDir({ digits: {}, 'fortune-lm': {} }), maxTokens: 8 });
});
afterAll(async () => {
  await server?.stop();
});

type Answer = { status: number; body: { data?: unknown; errors?: { message: string; extensions?: { code?: unknown } }[] } };

async function post(body: unknown): Promise<Answer> {
  const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

function wellFormed(answer: Answer, field?: string): void {
  expect(answer.status).toBeLessThan(500);
  const { data, errors } = answer.body;
  if (errors) {
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) {
      expect(typeof e.message).toBe('string');
      expect(typeof e.extensions?.code, JSON.stringify(e)).toBe('string');
      expect(e.extensions?.code).not.toBe('INTERNAL');
    }
  } else if (field) {
    expect((data as Record<string, unknown>)[field]).toBeTruthy();
  }
}

async function healthy() {
  expect((await fetch(server.url.replace('/graphql', '/health'))).status).toBe(200);
}

const INFER = 'mutation ($inputs: [TensorInput!]!) { infer(model: "digits", inputs: $inputs) { outputs { name shape data } } }';
const DATATYPES = ['BOOL', 'UINT8', 'INT8', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'fp32', 'STRING', ''];

const tensor = fc.record(
  {
    name: fc.oneof(fc.constant('pixels'), fc.string({ maxLength: 12 })),
    datatype: fc.oneof(fc.constant('FP32'), fc.constantFrom(...DATATYPES)),
    shape: fc.oneof(fc.constant([1, 64]), fc.array(fc.integer({ min: -3, max: 70 }), { maxLength: 4 }), fc.array(fc.integer(), { maxLength: 3 })),
    data: fc.option(fc.oneof(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 130 }), fc.array(fc.integer({ min: 0, max: 16 }), { minLength: 64, maxLength: 64 })), { nil: undefined }),
    base64: fc.option(fc.oneof(fc.base64String({ maxLength: 400 }), fc.string({ maxLength: 20 })), { nil: undefined }),
  },
  { requiredKeys: ['name', 'datatype', 'shape'] },
);

const params = fc.record(
  {
    maxTokens: fc.integer({ min: -2, max: 12 }),
    temperature: fc.double({ min: -1, max: 3, noNaN: true }),
    topK: fc.integer({ min: -2, max: 5000 }),
    topP: fc.double({ min: -0.5, max: 1.5, noNaN: true }),
    minP: fc.double({ min: -0.5, max: 1.5, noNaN: true }),
    repetitionPenalty: fc.double({ min: -1, max: 3, noNaN: true }),
    presencePenalty: fc.double({ min: -3, max: 3, noNaN: true }),
    frequencyPenalty: fc.double({ min: -3, max: 3, noNaN: true }),
    seed: fc.integer({ min: -5, max: 2 ** 31 - 1 }),
    stop: fc.array(fc.string({ maxLength: 80 }), { maxLength: 10 }),
  },
  { requiredKeys: [] },
);

const FIELDS = ['models', 'model', 'name', 'status', 'inputs', 'outputs', 'shape', '__typename', 'labels', 'nope', 'node', 'id', '__schema', 'types'];
const selection: fc.Arbitrary<string> = fc.letrec((tie) => ({
  sel: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...FIELDS),
    fc.tuple(fc.option(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/)), fc.constantFrom(...FIELDS), fc.array(tie('sel'), { minLength: 1, maxLength: 4 })).map(
      ([alias, field, subs]) => `${alias ? `${alias}: ` : ''}${field}${field === 'model' ? '(name: "digits")' : ''} { ${subs.join(' ')} }`,
    ),
  ),
})).sel as fc.Arbitrary<string>;

const document = fc.oneof(
  selection.map((s) => `{ ${s} }`),
  fc.integer({ min: 1, max: 100 }).map((depth) => `${'{ models { inputs '.repeat(depth)}{ name }${' } }'.repeat(depth)}`),
  fc.integer({ min: 1, max: 500 }).map((n) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: __typename`).join(' ')} }`),
  fc.string({ maxLength: 200 }),
  fc.integer({ min: 1, max: 50_000 }).map((n) => `{ models { name } } # ${'x'.repeat(n)}`),
  fc.tuple(fc.constantFrom('query', 'mutation', 'subscription'), selection).map(([op, s]) => `${op} { ${s} }`),
);

describe('fuzzing', { timeout: 600_000 }, () => {
  it('4,000 tensor inputs to infer', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(tensor, { maxLength: 3 }), async (inputs) => {
        wellFormed(await post({ query: INFER, variables: { inputs } }), 'infer');
      }),
      { numRuns: 4000 },
    );
    await healthy();
  });

  it('2,000 generation parameter sets', async () => {
    await fc.assert(
      fc.asyncProperty(params, fc.string({ maxLength: 60 }), async (p, prompt) => {
        wellFormed(await post({ query: 'mutation ($p: String!, $params: GenerationParams) { generate(model: "fortune-lm", prompt: $p, params: $params) { text finishReason } }', variables: { p: prompt, params: p } }), 'generate');
      }),
      { numRuns: 2000 },
    );
    await healthy();
  });

  it('4,000 GraphQL documents: deep, aliased, huge and broken', async () => {
    await fc.assert(
      fc.asyncProperty(document, async (query) => {
        wellFormed(await post({ query }));
      }),
      { numRuns: 4000 },
    );
    await healthy();
  });
});
