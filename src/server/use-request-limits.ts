import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ERROR_CODES, type ErrorCode } from '../errors.js';

function errorResponse(code: ErrorCode, message: string, headers: Record<string, string> = {}): Response {
  const body = { errors: [{ message, extensions: { code } }] };
  return new Response(JSON.stringify(body), { status: ERROR_CODES[code].status, headers: { 'content-type': 'application/json', ...headers } });
}

/** Refuses an HTTP body larger than `maxBytes` (by Content-Length) with 413 PAYLOAD_TOO_LARGE before reading it. */
export function useBodyLimit(maxBytes: number): Plugin {
  return {
    onRequest({ request, endResponse }) {
      const length = Number(request.headers.get('content-length') ?? 0);
      if (length > maxBytes) endResponse(errorResponse('PAYLOAD_TOO_LARGE', `The body has ${length} bytes; the limit is ${maxBytes}.`) as never);
    },
  };
}

/** A token bucket per caller: `perSecond` refill, `burst` capacity. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {}

  /** Takes one token; returns 0 if allowed, else the milliseconds until one is free. */
  take(caller: string, now = performance.now()): number {
    if (this.perSecond <= 0) return 0;
    const bucket = this.buckets.get(caller) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    this.buckets.set(caller, bucket);
    if (this.buckets.size > 100_000) this.buckets.clear();
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.perSecond) * 1000);
  }
}

/**
 * Per-key rate limit on operations (HTTP, SSE and WebSocket alike: it runs
 * on execute and subscribe). `caller` says whose bucket an operation uses.
 */
export function useRateLimit(limiter: RateLimiter, caller: (context: Record<string, unknown>) => string): Plugin {
  const refusal = (context: Record<string, unknown>) => {
    const wait = limiter.take(caller(context));
    if (wait === 0) return null;
    return new GraphQLError(`Rate limit exceeded; retry in ${wait} ms.`, {
      extensions: { code: 'RATE_LIMITED', retryAfterMs: wait, http: { status: 429, headers: { 'retry-after': String(Math.ceil(wait / 1000)) } } },
    });
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = refusal(args.contextValue as unknown as Record<string, unknown>);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = refusal(args.contextValue as unknown as Record<string, unknown>);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}
