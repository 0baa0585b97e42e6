import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics, named after Triton (`nv_inference_*`) and vLLM
 * (`vllm:*`) so existing dashboards read them. Services record into this
 * object; gauges that mirror live state are collected at scrape time.
 */
/** Live state the gauges read at scrape time; services fill these in. */
export interface MetricSources {
  queues?: () => { name: string; queued: number }[];
  sequences?: () => Record<string, { running: number; waiting: number }>;
  jobs?: () => Promise<Record<string, number>>;
}

export function createMetrics() {
  const sources: MetricSources = {};
  const registry = new Registry();
  const labels = ['model'] as const;
  const ms = (v: number) => v * 1000; // milliseconds → microseconds
  const m = {
    registry,
    sources,
    requestSuccess: new Counter({ name: 'nv_inference_request_success', help: 'Successful inference requests.', labelNames: labels, registers: [registry] }),
    requestFailure: new Counter({ name: 'nv_inference_request_failure', help: 'Failed inference requests, by error code.', labelNames: ['model', 'reason'], registers: [registry] }),
    inferenceCount: new Counter({ name: 'nv_inference_count', help: 'Requests run by the model (a batch of n counts n).', labelNames: labels, registers: [registry] }),
    execCount: new Counter({ name: 'nv_inference_exec_count', help: 'Model executions (session.run calls).', labelNames: labels, registers: [registry] }),
    queueDuration: new Counter({ name: 'nv_inference_queue_duration_us', help: 'Cumulative time requests waited in the queue, µs.', labelNames: labels, registers: [registry] }),
    computeDuration: new Counter({ name: 'nv_inference_compute_infer_duration_us', help: 'Cumulative session.run time, µs.', labelNames: labels, registers: [registry] }),
    pending: new Gauge({
      name: 'nv_inference_pending_request_count',
      help: 'Requests waiting in the queue.',
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const { name, queued } of sources.queues?.() ?? []) this.set({ model: name }, queued);
      },
    }),
    batchSize: new Histogram({ name: 'inferql_batch_size', help: 'Requests per session.run.', labelNames: labels, buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [registry] }),
    queueSeconds: new Histogram({ name: 'inferql_queue_duration_seconds', help: 'Time a request waited for its batch.', labelNames: labels, buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1], registers: [registry] }),
    computeSeconds: new Histogram({ name: 'inferql_compute_duration_seconds', help: 'session.run time per batch.', labelNames: labels, buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1], registers: [registry] }),
    running: new Gauge({
      name: 'vllm:num_requests_running',
      help: 'Sequences in the decode batch.',
      labelNames: ['model_name'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [model, stats] of Object.entries(sources.sequences?.() ?? {})) this.set({ model_name: model }, stats.running);
      },
    }),
    waiting: new Gauge({
      name: 'vllm:num_requests_waiting',
      help: 'Sequences waiting for a slot.',
      labelNames: ['model_name'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [model, stats] of Object.entries(sources.sequences?.() ?? {})) this.set({ model_name: model }, stats.waiting);
      },
    }),
    ttft: new Histogram({ name: 'vllm:time_to_first_token_seconds', help: 'Time to first token.', labelNames: ['model_name'], buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] }),
    itl: new Histogram({ name: 'vllm:time_per_output_token_seconds', help: 'Inter-token latency.', labelNames: ['model_name'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25], registers: [registry] }),
    generationTokens: new Counter({ name: 'vllm:generation_tokens_total', help: 'Generated tokens.', labelNames: ['model_name'], registers: [registry] }),
    promptTokens: new Counter({ name: 'vllm:prompt_tokens_total', help: 'Prompt tokens prefilled.', labelNames: ['model_name'], registers: [registry] }),
    jobs: new Gauge({
      name: 'inferql_jobs',
      help: 'Jobs by status.',
      labelNames: ['status'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [status, n] of Object.entries((await sources.jobs?.()) ?? {})) this.set({ status }, n);
      },
    }),
    subscriptions: new Gauge({ name: 'inferql_subscriptions_open', help: 'Open GraphQL subscriptions (WebSocket and SSE).', registers: [registry] }),
    recordBatch(event: { model: string; size: number; computeMs: number; queueMs: number[] }) {
      const l = { model: event.model };
      m.execCount.inc(l);
      m.inferenceCount.inc(l, event.size);
      m.batchSize.observe(l, event.size);
      m.computeDuration.inc(l, ms(event.computeMs));
      m.computeSeconds.observe(l, event.computeMs / 1000);
      for (const q of event.queueMs) {
        m.queueDuration.inc(l, ms(q));
        m.queueSeconds.observe(l, q / 1000);
      }
    },
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
