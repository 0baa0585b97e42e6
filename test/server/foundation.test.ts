import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_MODELS, modelsDir, SHIPPED_MODELS, type TestServer, sse, startServer, subscribeAll } from '../helpers/server.js';

/** sklearn's first digits image (a "0"), raw 0–16 pixel values. */
const PIXELS = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0];

const INFER = /* GraphQL */ `
  mutation ($model: String!, $inputs: [TensorInput!]!) {
    infer(model: $model, inputs: $inputs) {
      outputs { name datatype shape data base64 }
      metrics { queueMs computeMs batchSize }
    }
  }
`;

const digitsPath = () => [join(SHIPPED_MODELS, 'digits', 'onnx', 'model.onnx'), join(SHIPPED_MODELS, 'digits', 'model.onnx')].find(existsSync)!;

let server: TestServer;
let dir: string;

beforeAll(async () => {
  dir = modelsDir({
    digits: {},
    'fortune-topic': {},
    'static-batch': { from: join(FIXTURE_MODELS, 'static-batch') },
    reshape3: { from: join(FIXTURE_MODELS, 'reshape3') },
  });
  mkdirSync(join(dir, 'broken'));
  writeFileSync(join(dir, 'broken', 'model.onnx'), 'this is not an onnx file');
  // A "decoder" whose graph has no past inputs: FAILED at load, not INTERNAL at the first generation.
  mkdirSync(join(dir, 'not-a-decoder'));
  for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(SHIPPED_MODELS, 'fortune-lm', file), join(dir, 'not-a-decoder', file));
  copyFileSync(digitsPath(), join(dir, 'not-a-decoder', 'model.onnx'));
  server = await startServer({ modelsDir: dir });
});

afterAll(async () => {
  await server?.stop();
});

/** The server still answers a plain query. */
async function stillServing() {
  const res = await server.gql('{ models { name } }');
  expect(res.errors).toBeUndefined();
  expect(res.data.models.length).toBeGreaterThan(0);
}

describe('models', () => {
  it('lists every folder with status, task, I/O and labels; a broken folder is FAILED and the rest serve', async () => {
    const res = await server.gql(`{ models { id name version task status ready error inputs { name datatype shape dimNames } outputs { name datatype shape } labels } }`);
    expect(res.errors).toBeUndefined();
    const byName = Object.fromEntries(res.data.models.map((m: any) => [m.name, m]));
    expect(Object.keys(byName).sort()).toEqual(['broken', 'digits', 'fortune-topic', 'not-a-decoder', 'reshape3', 'static-batch']);
    expect(byName['not-a-decoder']).toMatchObject({ status: 'FAILED', task: 'TEXT_GENERATION' });
    expect(byName['not-a-decoder'].error).toMatch(/decoder needs/);
    expect(byName.broken).toMatchObject({ status: 'FAILED', ready: false });
    expect(byName.broken.error).toMatch(/./);
    expect(byName.digits).toMatchObject({ status: 'READY', task: 'CLASSIFICATION', version: '1', labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] });
    expect(byName.digits.inputs).toEqual([{ name: 'pixels', datatype: 'FP32', shape: [null, 64], dimNames: ['batch_size', null] }]);
    expect(byName.digits.outputs).toEqual([{ name: 'logits', datatype: 'FP32', shape: [null, 10] }]);
    expect(byName['fortune-topic'].inputs.map((i: any) => [i.name, i.datatype, i.shape])).toEqual([
      ['input_ids', 'INT64', [null, null]],
      ['attention_mask', 'INT64', [null, null]],
    ]);
  });

  it('model(name:) and node(id:) find the same model by name and by global id', async () => {
    const one = await server.gql(`{ model(name: "digits") { id name } missing: model(name: "nope") { id } }`);
    expect(one.data.missing).toBeNull();
    const node = await server.gql(`query ($id: ID!) { node(id: $id) { id ... on Model { name status } } }`, { id: one.data.model.id });
    expect(node.data.node).toEqual({ id: one.data.model.id, name: 'digits', status: 'READY' });
  });
});

describe('infer', () => {
  it('returns the same float32 bits as onnxruntime-node called directly', async () => {
    const session = await ort.InferenceSession.create(digitsPath());
    const direct = await session.run({ pixels: new ort.Tensor('float32', Float32Array.from(PIXELS), [1, 64]) });
    const expected = direct.logits!.data as Float32Array;
    const res = await server.gql(INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: PIXELS }] });
    expect(res.errors).toBeUndefined();
    const [out] = res.data.infer.outputs;
    expect(out).toMatchObject({ name: 'logits', datatype: 'FP32', shape: [1, 10] });
    expect(Buffer.from(out.base64, 'base64').equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))).toBe(true);
    expect(out.data).toEqual(Array.from(expected));
    expect(res.data.infer.metrics.batchSize).toBe(1);
    await session.release();
  });

  it('takes base64 input for large payloads and gives the same answer', async () => {
    const bytes = Buffer.from(Float32Array.from([...PIXELS, ...PIXELS]).buffer).toString('base64');
    const viaBase64 = await server.gql(INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [2, 64], base64: bytes }] });
    const viaData = await server.gql(INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [2, 64], data: [...PIXELS, ...PIXELS] }] });
    expect(viaBase64.errors).toBeUndefined();
    expect(viaBase64.data.infer.outputs[0].shape).toEqual([2, 10]);
    expect(viaBase64.data.infer.outputs[0].base64).toBe(viaData.data.infer.outputs[0].base64);
  });

  it('runs a model without a dynamic batch axis one request at a time, correctly', async () => {
    const answers = await Promise.all(
      [1, 2, 3, 4].map((v) => server.gql(INFER, { model: 'static-batch', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [v, v, v, v] }] })),
    );
    answers.forEach((res, i) => {
      expect(res.errors).toBeUndefined();
      expect(res.data.infer.outputs[0].data).toEqual([2, 2, 2, 2].map((d) => d * (i + 1)));
      expect(res.data.infer.metrics.batchSize).toBe(1);
    });
  });
});

describe('classify', () => {
  it('classifies feature vectors with the model labels, topK best first', async () => {
    const res = await server.gql(`mutation ($v: [Float!]!) { classify(model: "digits", inputs: [{ values: $v }, { values: $v }], topK: 3) { labels { label score } } }`, { v: PIXELS });
    expect(res.errors).toBeUndefined();
    expect(res.data.classify).toHaveLength(2);
    const [first] = res.data.classify;
    expect(first.labels).toHaveLength(3);
    expect(first.labels[0].label).toBe('0');
    expect(first.labels[0].score).toBeGreaterThanOrEqual(first.labels[1].score);
  });

  it('classifies text with the tokenizer of a text classifier', async () => {
    const res = await server.gql(`mutation { classify(model: "fortune-topic", inputs: [{ text: "Love is patient, love is kind." }, { text: "The computer crashed again." }]) { labels { label score } } }`);
    expect(res.errors).toBeUndefined();
    for (const c of res.data.classify) {
      const total = c.labels.reduce((s: number, l: any) => s + l.score, 0);
      expect(total).toBeCloseTo(1, 5);
    }
  });
});

describe('errors: each bad input gets its code and the server keeps serving', () => {
  const cases: [string, string, Record<string, unknown>, string][] = [
    ['unknown model', INFER, { model: 'nope', inputs: [] }, 'MODEL_NOT_FOUND'],
    ['failed model', INFER, { model: 'broken', inputs: [] }, 'MODEL_NOT_READY'],
    ['unknown input', INFER, { model: 'digits', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 64], data: PIXELS }] }, 'BAD_TENSOR'],
    ['missing input', INFER, { model: 'digits', inputs: [] }, 'BAD_TENSOR'],
    ['wrong datatype', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP64', shape: [1, 64], data: PIXELS }] }, 'BAD_TENSOR'],
    ['wrong shape', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 63], data: PIXELS.slice(1) }] }, 'BAD_TENSOR'],
    ['wrong rank', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [64], data: PIXELS }] }, 'BAD_TENSOR'],
    ['count ≠ shape', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [2, 64], data: PIXELS }] }, 'BAD_TENSOR'],
    ['data and base64', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: PIXELS, base64: 'AAAA' }] }, 'BAD_TENSOR'],
    ['short base64', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], base64: 'AAAA' }] }, 'BAD_TENSOR'],
    ['NaN in base64', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], base64: Buffer.from(new Float32Array(64).fill(Number.NaN).buffer).toString('base64') }] }, 'BAD_TENSOR'],
    ['over the size limit', INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [100_000, 64], base64: '' }] }, 'BAD_TENSOR'],
    ['non-integer INT64', INFER, { model: 'fortune-topic', inputs: [{ name: 'input_ids', datatype: 'INT64', shape: [1, 1], data: [1.5] }, { name: 'attention_mask', datatype: 'INT64', shape: [1, 1], data: [1] }] }, 'BAD_TENSOR'],
    ['disagreeing sequence lengths', INFER, { model: 'fortune-topic', inputs: [{ name: 'input_ids', datatype: 'INT64', shape: [1, 2], data: [1, 2] }, { name: 'attention_mask', datatype: 'INT64', shape: [1, 1], data: [1] }] }, 'BAD_TENSOR'],
    ['text to a values model', `mutation { classify(model: "digits", inputs: [{ text: "hi" }]) { labels { label } } }`, {}, 'BAD_INPUT'],
    ['classify a tensor model', `mutation { classify(model: "static-batch", inputs: [{ values: [1, 2, 3, 4] }]) { labels { label } } }`, {}, 'MODEL_TASK_MISMATCH'],
    ['bad topK', `mutation { classify(model: "digits", inputs: [{ values: [1] }], topK: 0) { labels { label } } }`, {}, 'BAD_INPUT'],
  ];

  it.each(cases)('%s', async (_name, query, variables, code) => {
    const res = await server.gql(query, variables);
    expect(res.data?.infer ?? res.data?.classify ?? null).toBeNull();
    expect(res.errors?.[0]?.extensions?.code).toBe(code);
    expect(res.errors?.[0]?.message).toMatch(/\w/);
    await stillServing();
  });

  it('a oneOf input with both fields is a validation error', async () => {
    const res = await server.gql(`mutation { classify(model: "digits", inputs: [{ text: "a", values: [1] }]) { labels { label } } }`);
    expect(res.status).toBe(400);
    expect(res.errors?.[0]?.message).toMatch(/exactly one/i);
    await stillServing();
  });

  it('masks an internal failure inside onnxruntime as INTERNAL, with no detail', async () => {
    const res = await server.gql(INFER, { model: 'reshape3', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    expect(res.errors?.[0]?.extensions?.code).toBe('INTERNAL');
    expect(res.errors?.[0]?.message).toBe('Unexpected error.');
    const ok = await server.gql(INFER, { model: 'reshape3', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
    expect(ok.data.infer.outputs[0].data).toEqual([1, 2, 3]);
  });

  it('answers GraphQL syntax errors and unknown fields without dying', async () => {
    const syntax = await server.gql('{ models { name ');
    expect(syntax.errors?.[0]?.message).toMatch(/Syntax Error/);
    const unknown = await server.gql('{ modelz { name } }');
    expect(unknown.errors?.[0]?.message).toMatch(/Cannot query field/);
    await stillServing();
  });
});

describe('model lifecycle and modelEvents over WebSocket and SSE', () => {
  it('unloadModel → MODEL_NOT_READY; loadModel → serving again; both streams see the events', async () => {
    const client = server.ws();
    const wsEvents: any[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const stop = client.subscribe<{ modelEvents: any }>(
        { query: 'subscription { modelEvents { model kind status } }' },
        {
          next: ({ data }) => {
            wsEvents.push(data!.modelEvents);
            if (data!.modelEvents.kind === 'READY') {
              stop();
              resolve();
            }
          },
          error: reject,
          complete: () => resolve(),
        },
      );
    });
    const controller = new AbortController();
    const sseEvents: any[] = [];
    const sseDone = (async () => {
      for await (const event of sse(server.url, 'subscription { modelEvents { model kind status } }', undefined, { signal: controller.signal })) {
        sseEvents.push(event.data!.modelEvents);
        if (event.data!.modelEvents.kind === 'READY') break;
      }
    })();
    // Both subscriptions must be live before the first event.
    await new Promise((r) => setTimeout(r, 300));

    const unloaded = await server.gql('mutation { unloadModel(name: "static-batch") { name status ready } }');
    expect(unloaded.data.unloadModel).toEqual({ name: 'static-batch', status: 'UNLOADED', ready: false });
    const refused = await server.gql(INFER, { model: 'static-batch', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] }] });
    expect(refused.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_READY');
    const loaded = await server.gql('mutation { loadModel(name: "static-batch") { status } }');
    expect(loaded.data.loadModel.status).toBe('READY');

    await done;
    await sseDone;
    controller.abort();
    const expected = [
      { model: 'static-batch', kind: 'UNLOADED', status: 'UNLOADED' },
      { model: 'static-batch', kind: 'LOADING', status: 'LOADING' },
      { model: 'static-batch', kind: 'READY', status: 'READY' },
    ];
    expect(wsEvents).toEqual(expected);
    expect(sseEvents).toEqual(expected);
    const again = await server.gql(INFER, { model: 'static-batch', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] }] });
    expect(again.errors).toBeUndefined();
  });

  it('loadModel of an unknown folder is MODEL_NOT_FOUND', async () => {
    const res = await server.gql('mutation { loadModel(name: "ghost") { status } }');
    expect(res.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
  });

  it('a bad document in one WebSocket subscription leaves the others on the socket running', async () => {
    const client = server.ws();
    const bad = await subscribeAll(client, 'subscription { modelEvents { nope } }');
    expect(bad.errors.length).toBeGreaterThan(0);
    const syntax = await subscribeAll(client, 'subscription { modelEvents {');
    expect(syntax.errors.length).toBeGreaterThan(0);
    const query = await subscribeAll(client, '{ models { name } }');
    expect(query.errors).toEqual([]);
    expect(query.events[0].models.length).toBe(6);
  });
});

describe('HTTP surface', () => {
  it('GET /health and /ready answer', async () => {
    const base = server.url.replace('/graphql', '');
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });
  });

  it('queries work over GET too', async () => {
    const res = await fetch(`${server.url}?query=${encodeURIComponent('{ models { name } }')}`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).data.models.length).toBe(6);
  });

  it('GET /metrics exposes Triton- and vLLM-named metrics that move with traffic', async () => {
    const base = server.url.replace('/graphql', '');
    await Promise.all([1, 2, 3].map(() => server.gql(INFER, { model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: PIXELS }] })));
    await server.gql(INFER, { model: 'digits', inputs: [] });
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
    expect(value(/^nv_inference_request_success\{model="digits"\} (\d+)/m)).toBeGreaterThanOrEqual(3);
    expect(value(/^nv_inference_request_failure\{model="digits",reason="BAD_TENSOR"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^nv_inference_exec_count\{model="digits"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^inferql_batch_size_bucket\{le="1",model="digits"\} \d+/m);
    expect(text).toMatch(/^nv_inference_pending_request_count\{model="digits"\} 0/m);
    expect(text).toMatch(/^graphql_yoga_http_duration_bucket/m);
    expect(text).toMatch(/^inferql_subscriptions_open \d+/m);
  });

  it('serves GraphiQL with every asset inline: no external host is referenced', async () => {
    const res = await fetch(server.url, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('inferql');
    const external = [...html.matchAll(/(?:src|href)\s*=\s*["'](https?:)?\/\/([^"'/]+)/g)].map((m) => m[2]);
    expect(external).toEqual([]);
    expect(html).not.toMatch(/unpkg\.com|jsdelivr|cdnjs|esm\.sh/);
  });
});
