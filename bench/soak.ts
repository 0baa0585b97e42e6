/**
 * Soak: holds SOAK_STREAMS (500) concurrent `generate` subscriptions over
 * graphql-ws for SOAK_SECONDS (60), each stream starting again as soon as it
 * finishes, against a server in its own process. Reports dropped tokens
 * (an index gap, or fewer events than usage.completionTokens: must be 0),
 * inter-token latency p50/p99 and the server's RSS after warm-up and at the end.
 *
 * Run: npx tsx bench/soak.ts
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { fmt, percentile, ROOT, startServerProcess } from './lib.js';

const STREAMS = Number(process.env.SOAK_STREAMS ?? 500);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const SOCKETS = 25;
const QUERY = `subscription ($p: String!, $params: GenerationParams) {
  generate(model: "fortune-lm", prompt: $p, params: $params) { index text finishReason usage { completionTokens } }
}`;

async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

async function main() {
  const server = await startServerProcess({ MODELS_DIR: `${ROOT}/models`, MAX_RUNNING_SEQUENCES: '64', MAX_WAITING_SEQUENCES: '1000', MAX_SUBSCRIPTIONS_PER_KEY: '10000' });
  const pid = server.child.pid!;
  const clients = Array.from({ length: SOCKETS }, () => createClient({ url: server.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 }));
  const gaps: number[] = [];
  let tokens = 0;
  let streams = 0;
  let dropped = 0;
  let errors = 0;
  let stop = false;
  const warmUpEnd = Date.now() + 5000;
  let rssStart = 0;

  const run = (client: ReturnType<typeof createClient>, i: number) =>
    new Promise<void>((resolve) => {
      let expected = 0;
      let last = 0;
      client.subscribe<{ generate: { index: number; finishReason: string | null; usage: { completionTokens: number } | null } }>(
        { query: QUERY, variables: { p: `Soak ${i}:`, params: { maxTokens: 48, temperature: 0.8, seed: i } } },
        {
          next: ({ data }) => {
            const e = data!.generate;
            const now = performance.now();
            if (e.index !== expected) dropped += Math.abs(e.index - expected);
            expected = e.index + 1;
            if (last && Date.now() > warmUpEnd) gaps.push(now - last);
            last = now;
            tokens++;
            if (e.finishReason && e.usage && e.usage.completionTokens !== expected) dropped += Math.abs(e.usage.completionTokens - expected);
          },
          error: () => {
            errors++;
            resolve();
          },
          complete: () => {
            streams++;
            resolve();
          },
        },
      );
    });

  const start = Date.now();
  setTimeout(async () => (rssStart = await rssOf(pid)), 5000);
  await Promise.all(
    Array.from({ length: STREAMS }, async (_, i) => {
      while (!stop) await run(clients[i % SOCKETS]!, i);
    }).concat([new Promise<void>((r) => setTimeout(() => ((stop = true), r()), SECONDS * 1000)).then(() => undefined)]),
  );
  const rssEnd = await rssOf(pid);
  const elapsed = (Date.now() - start) / 1000;
  gaps.sort((a, b) => a - b);
  console.log(`bench/soak: ${STREAMS} concurrent generate subscriptions over ${SOCKETS} sockets for ${fmt(elapsed, 0)} s`);
  console.log(`streams completed ${streams}, tokens ${tokens} (${fmt(tokens / elapsed)} tokens/s), errors ${errors}`);
  console.log(`dropped tokens: ${dropped}`);
  console.log(`inter-token latency p50 ${fmt(percentile(gaps, 50))} ms, p99 ${fmt(percentile(gaps, 99))} ms`);
  console.log(`server RSS after warm-up ${fmt(rssStart)} MiB, at the end ${fmt(rssEnd)} MiB (growth ${fmt(((rssEnd - rssStart) / rssStart) * 100)}%)`);
  await Promise.all(clients.map((c) => c.dispose()));
  await server.stop();
}

await main();
