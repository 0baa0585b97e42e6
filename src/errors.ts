import { GraphQLError } from 'graphql';

/**
 * The one catalog of error codes a client can see. Every code has a default
 * message and an HTTP status hint; the README's error table is checked
 * against this object by a test.
 */
export const ERROR_CODES = {
  MODEL_NOT_FOUND: { status: 404, message: 'No model with that name.' },
  MODEL_NOT_READY: { status: 503, message: 'The model is not loaded.' },
  MODEL_TASK_MISMATCH: { status: 400, message: 'The model does not support this operation.' },
  BAD_TENSOR: { status: 400, message: 'An input tensor is invalid.' },
  BAD_INPUT: { status: 400, message: 'The input is invalid.' },
  BAD_GENERATION_PARAMS: { status: 400, message: 'A generation parameter is invalid.' },
  QUEUE_FULL: { status: 503, message: "The model's queue is full; retry later." },
  TIMEOUT: { status: 504, message: 'The deadline passed before the request ran.' },
  CANCELLED: { status: 499, message: 'The request was cancelled.' },
  JOB_NOT_FOUND: { status: 404, message: 'No job with that id.' },
  JOB_FINISHED: { status: 409, message: 'The job has already finished.' },
  INTERRUPTED: { status: 503, message: 'The job was interrupted (the server stopped while it ran) too many times.' },
  UNAUTHENTICATED: { status: 401, message: 'A valid API key is required.' },
  FORBIDDEN: { status: 403, message: 'The API key lacks the scope for this operation.' },
  QUERY_LIMIT: { status: 400, message: 'The document exceeds a query limit (depth, cost, aliases, tokens or directives).' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; slow down.' },
  TOO_MANY_CONNECTIONS: { status: 429, message: 'Too many open connections or subscriptions for this key.' },
  UNAVAILABLE: { status: 503, message: 'The service is unavailable.' },
  INTERNAL: { status: 500, message: 'Unexpected error.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Extra, machine-readable details that travel in `extensions`. */
export type ErrorDetails = Record<string, unknown>;

const BRAND = Symbol.for('inferql.error');

/** A client-facing error: a GraphQLError whose `extensions.code` is in the catalog. */
export class InferqlError extends GraphQLError {
  readonly code: ErrorCode;
  /** Survives a second copy of the graphql module (CJS beside ESM), where instanceof fails. */
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message?: string, details: ErrorDetails = {}) {
    const entry = ERROR_CODES[code];
    super(message ?? entry.message, {
      extensions: { code, ...details, http: { status: entry.status } },
    });
    this.code = code;
    this.name = 'InferqlError';
  }
}

export function inferqlError(code: ErrorCode, message?: string, details?: ErrorDetails): InferqlError {
  return new InferqlError(code, message, details);
}

export function isInferqlError(error: unknown): error is InferqlError {
  return error instanceof InferqlError || (typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[BRAND] === true);
}

/** Turns any thrown value into a catalog error, keeping catalog errors as they are. */
export function toInferqlError(error: unknown): InferqlError {
  if (isInferqlError(error)) return error;
  return new InferqlError('INTERNAL');
}
