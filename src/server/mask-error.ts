import { GraphQLError } from 'graphql';
import { InferqlError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * Client errors (our catalog, GraphQL syntax and validation errors) pass
 * through; anything else is logged and replaced with a bare INTERNAL error.
 */
export function createMaskError(log: Logger) {
  return (error: unknown, message: string): Error => {
    const original = error instanceof GraphQLError ? error.originalError : error;
    if (original === undefined || original === null || original instanceof GraphQLError) return error as Error;
    if (original instanceof InferqlError) return error as Error;
    log.error('internal error', { error: String(original), stack: (original as Error)?.stack });
    const path = error instanceof GraphQLError ? error.path : undefined;
    return new GraphQLError(message, { path, extensions: { code: 'INTERNAL', http: { status: 500 } } });
  };
}
