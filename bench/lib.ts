import { type ServerProcess, startProcess } from '../test/helpers/process.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export type { ServerProcess };

export const ROOT = resolve(import.meta.dirname, '..');

/** Starts `src/main.ts` as its own process (as an operator would) on a free port, with its own DATA_DIR. */
export function startServerProcess(env: Record<string, string> = {}): Promise<ServerProcess> {
  return startProcess({ DATA_DIR: mkdtempSync(join(tmpdir(), 'inferql-bench-')), ...env });
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export interface LoadResult {
  requests: number;
  errors: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/**
 * `concurrency` clients each send requests back to back for `durationMs`;
 * `body(i)` gives request i's JSON body. Counts a response with GraphQL
 * errors as an error.
 */
export async function httpLoad(url: string, concurrency: number, durationMs: number, body: (i: number) => unknown): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(next++)) });
        const json = (await res.json()) as { errors?: unknown };
        if (json.errors) errors++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = performance.now() - start;
  latencies.sort((a, b) => a - b);
  return { requests: latencies.length, errors, perSecond: (latencies.length / elapsed) * 1000, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits);
