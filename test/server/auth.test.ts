import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { modelsDir, type TestServer, startServer, subscribeAll } from '../helpers/server.js';

const KEYS = { infer: 'infer-key-1', jobs: 'jobs-key-1', admin: 'admin-key-1' };
const INFER = `mutation { infer(model: "digits", inputs: [{ name: "pixels", datatype: FP32, shape: [1, 64], base64: "${Buffer.alloc(256).toString('base64')}" }]) { outputs { shape } } }`;
const UNLOAD = 'mutation { unloadModel(name: "spare") { status } }';
const LOAD = 'mutation { loadModel(name: "spare") { status } }';

let server: TestServer;
const as = (key: string | null) => (key ? { headers: { authorization: `Bearer ${key}` } } : {});

beforeAll(async () => {
  server = await startServer({
    modelsDir: modelsDir({ digits: {}, spare: { from: `${modelsDir({ digits: {} })}/digits` } }),
    apiKeys: `${KEYS.infer}=infer,${KEYS.jobs}=jobs,${KEYS.admin}=admin+infer+jobs`,
  });
});

afterAll(async () => {
  await server?.stop();
});

describe('API keys over HTTP', () => {
  it('no key or an unknown key is UNAUTHENTICATED (401), for queries too', async () => {
    for (const init of [as(null), as('not-a-key-at-all')]) {
      const res = await server.gql('{ models { name } }', undefined, init);
      expect(res.status).toBe(401);
      expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });

  it('any valid key may read models', async () => {
    for (const key of Object.values(KEYS)) {
      const res = await server.gql('{ models { name } }', undefined, as(key));
      expect(res.errors).toBeUndefined();
    }
  });

  it('infer needs the infer scope', async () => {
    expect((await server.gql(INFER, undefined, as(KEYS.infer))).errors).toBeUndefined();
    expect((await server.gql(INFER, undefined, as(KEYS.admin))).errors).toBeUndefined();
    const refused = await server.gql(INFER, undefined, as(KEYS.jobs));
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('loadModel and unloadModel need the admin scope', async () => {
    for (const key of [KEYS.infer, KEYS.jobs]) {
      const refused = await server.gql(UNLOAD, undefined, as(key));
      expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
    expect(server.app.services.registry.get('spare')!.status).toBe('READY');
    expect((await server.gql(UNLOAD, undefined, as(KEYS.admin))).data.unloadModel.status).toBe('UNLOADED');
    expect((await server.gql(LOAD, undefined, as(KEYS.admin))).data.loadModel.status).toBe('READY');
  });
});

describe('API keys over WebSocket (checked once, in connection_init)', () => {
  it('a socket without a valid key is closed with 4403', async () => {
    for (const connectionParams of [undefined, { authorization: 'Bearer nope-nope-nope' }]) {
      const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true });
      const { errors } = await subscribeAll(client, '{ models { name } }');
      expect((errors[0] as { code?: number }).code).toBe(4403);
      await client.dispose();
    }
  });

  it('scopes apply to WebSocket operations as to HTTP ones', async () => {
    const inferClient = server.ws({ authorization: `Bearer ${KEYS.infer}` });
    expect((await subscribeAll(inferClient, INFER)).errors).toEqual([]);
    const forbidden = await subscribeAll(inferClient, UNLOAD);
    expect((forbidden.errors[0] as any).extensions?.code ?? (forbidden.errors[0] as any)[0]?.extensions?.code).toBe('FORBIDDEN');

    const adminClient = server.ws({ apiKey: KEYS.admin });
    const unloaded = await subscribeAll(adminClient, UNLOAD);
    expect(unloaded.events[0].unloadModel.status).toBe('UNLOADED');
    expect((await subscribeAll(adminClient, LOAD)).events[0].loadModel.status).toBe('READY');

    const jobsClient = server.ws({ authorization: KEYS.jobs });
    const refused = await subscribeAll(jobsClient, INFER);
    expect(JSON.stringify(refused.errors)).toContain('FORBIDDEN');
  });
});
