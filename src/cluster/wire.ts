import type { GenerationParams, TokenEvent } from '../generation/types.js';
import type { ClassifyInput } from '../inference/service.js';
import { ERROR_CODES, type ErrorCode, inferqlError, isInferqlError, type InferqlError } from '../errors.js';
import type { JobInput } from '../jobs/types.js';
import type { TensorPayload } from '../runtime/tensor-codec.js';

/**
 * What travels between API and worker processes, as JSON: the call a BullMQ
 * job carries, the messages of a token stream, and errors with their code.
 */

interface Scheduling {
  priority?: number;
  /** Wall-clock ms by which the call must have started (TIMEOUT otherwise). */
  deadlineAt?: number;
}

export type CallRequest =
  | ({ op: 'infer'; model: string; inputs: TensorPayload[] } & Scheduling)
  | ({ op: 'classify'; model: string; inputs: ClassifyInput[]; topK: number | null } & Scheduling)
  | ({ op: 'generate'; model: string; prompt: string; params: GenerationParams | null } & Scheduling)
  /** Tokens go out on the stream's channel as they come; the job itself returns nothing. */
  | ({ op: 'stream'; model: string; prompt: string; params: GenerationParams | null; streamId: string } & Scheduling)
  | ({ op: 'check'; model: string; input: JobInput } & Scheduling);

/** One message on a token stream's channel: a token event, or the error that ended it. */
export type StreamMessage = { event: TokenEvent } | { error: WireError };

export interface WireError {
  code: string;
  message: string;
  extensions: Record<string, unknown>;
}

const MARK = 'inferql-error:';

export function toWire(error: unknown): WireError {
  if (isInferqlError(error)) return { code: error.code, message: error.message, extensions: { ...error.extensions } };
  return { code: 'INTERNAL', message: 'Unexpected error.', extensions: {} };
}

export function fromWire(wire: WireError): InferqlError {
  const code = (wire.code in ERROR_CODES ? wire.code : 'INTERNAL') as ErrorCode;
  const { code: _code, http: _http, ...details } = wire.extensions;
  return inferqlError(code, wire.message, details);
}

/** An error as a BullMQ failedReason (a string). */
export function encodeError(error: unknown): string {
  return MARK + JSON.stringify(toWire(error));
}

/**
 * A failed call's reason as the error to throw. Anything but our own mark
 * means the call never ran to an answer: its worker died (BullMQ found the
 * job stalled) or Redis went away.
 */
export function decodeError(reason: string): InferqlError {
  if (reason.startsWith(MARK)) {
    try {
      return fromWire(JSON.parse(reason.slice(MARK.length)) as WireError);
    } catch {
      // fall through
    }
  }
  return inferqlError('UNAVAILABLE', `The worker running this call stopped before it answered (${reason}); retry.`);
}

/** Milliseconds left before `deadlineAt`, as the local services take a deadline. */
export function remainingMs(deadlineAt: number | undefined): number | undefined {
  return deadlineAt === undefined ? undefined : Math.max(1, deadlineAt - Date.now());
}
