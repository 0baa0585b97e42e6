#!/usr/bin/env node
// Streams a generation from inferql with the graphql-ws client: each token is
// printed the moment the server sends it.
//
//   node examples/stream-generation.mjs "A journey of a thousand miles"
//   node examples/stream-generation.mjs --model fortune-lm --max-tokens 40 --temperature 0 "Fortune favours"
//
// Environment: INFERQL_URL (default ws://127.0.0.1:4000/graphql), INFERQL_API_KEY
// (sent in connection_init when the server has API keys on).
import { parseArgs } from 'node:util';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: process.env.INFERQL_URL ?? 'ws://127.0.0.1:4000/graphql' },
    model: { type: 'string', default: 'fortune-lm' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    seed: { type: 'string' },
  },
});
const prompt = positionals.join(' ') || 'A journey of a thousand miles';
const params = {};
if (values['max-tokens'] !== undefined) params.maxTokens = Number(values['max-tokens']);
if (values.temperature !== undefined) params.temperature = Number(values.temperature);
if (values.seed !== undefined) params.seed = Number(values.seed);

const GENERATE = `subscription Generate($model: String!, $prompt: String!, $params: GenerationParams) {
  generate(model: $model, prompt: $prompt, params: $params) {
    index
    text
    finishReason
    usage { promptTokens completionTokens }
    metrics { ttftMs tokensPerSecond }
  }
}`;

const apiKey = process.env.INFERQL_API_KEY;
const client = createClient({
  url: values.url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
  retryAttempts: 0,
});

// Ctrl-C completes the subscription: the server cancels the generation.
let stop = () => {};
process.once('SIGINT', () => stop());

let exitCode = 0;
try {
  const events = client.iterate({ query: GENERATE, variables: { model: values.model, prompt, params } });
  stop = () => void events.return?.();
  for await (const result of events) {
    if (result.errors) throw new Error(result.errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('\n'));
    const event = result.data.generate;
    process.stdout.write(event.text);
    if (event.finishReason) {
      const { usage, metrics } = event;
      process.stderr.write(
        `\n[${usage.completionTokens} tokens, ${event.finishReason}, first token ${metrics.ttftMs.toFixed(0)} ms, ${metrics.tokensPerSecond.toFixed(1)} tokens/s]\n`,
      );
    }
  }
} catch (error) {
  const errors = Array.isArray(error) ? error : [error];
  process.stderr.write(`\n${errors.map((e) => e?.message ?? e?.reason ?? String(e)).join('\n')}\n`);
  exitCode = 1;
} finally {
  await client.dispose();
}
process.exitCode = exitCode;
