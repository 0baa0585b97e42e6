import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir, type TestServer, startServer } from '../helpers/server.js';

const INFER = `mutation ($d: [Float!]!) { infer(model: "digits", inputs: [{ name: "pixels", datatype: FP32, shape: [1, 64], data: $d }]) { outputs { data } } }`;
const pixels = Array.from({ length: 64 }, (_, i) => i % 17);

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ modelsDir: modelsDir({ digits: {} }) });
});
afterAll(async () => {
  await server?.stop();
});

describe('reloadModel under load', () => {
  it('five reloads during continuous traffic fail no request, and modelEvents announces each step', async () => {
    const events: string[] = [];
    const client = server.ws();
    const unsubscribe = client.subscribe<{ modelEvents: { kind: string } }>(
      { query: 'subscription { modelEvents { model kind } }' },
      { next: ({ data }) => events.push(data!.modelEvents.kind), error: () => {}, complete: () => {} },
    );
    await new Promise((r) => setTimeout(r, 200));
    const expected = (await server.gql(INFER, { d: pixels })).data.infer.outputs[0].data;

    let stop = false;
    let ok = 0;
    const failures: unknown[] = [];
    const traffic = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const res = await server.gql(INFER, { d: pixels });
        if (res.errors) failures.push(res.errors);
        else {
          expect(res.data.infer.outputs[0].data).toEqual(expected);
          ok++;
        }
      }
    });
    for (let i = 0; i < 5; i++) {
      const res = await server.gql('mutation { reloadModel(name: "digits") { status } }');
      expect(res.data.reloadModel.status).toBe('READY');
    }
    stop = true;
    await Promise.all(traffic);
    unsubscribe();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    expect(events.filter((k) => k === 'RELOADING')).toHaveLength(5);
    expect(events.filter((k) => k === 'SWITCHED')).toHaveLength(5);
    expect(events.filter((k) => k === 'DRAINED')).toHaveLength(5);
  });
});
