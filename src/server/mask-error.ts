import { GraphQLError } from 'graphql';
import { isInferqlError } from '../errors.js';
import type { Logger } from '../log.js';

/** A GraphQLError from any copy of the graphql module (ESM and CJS can both be loaded). */
function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof GraphQLError || (error instanceof Error && (error.name === 'GraphQLError' || isInferqlError(error)) && 'extensions' in error);
}

/**
 * Client errors (our catalog, GraphQL syntax and validation errors) pass
 * through; anything else is logged and replaced with a bare INTERNAL error.
 */
export function createMaskError(log: Logger) {
  return (error: unknown, message: string): Error => {
    let original: unknown = error;
    while (isGraphQLError(original) && !isInferqlError(original) && original.originalError) original = original.originalError;
    if (isInferqlError(original) || (isGraphQLError(original) && !original.originalError)) return error as Error;
    log.error('internal error', { error: String(original), stack: (original as Error)?.stack });
    const path = isGraphQLError(error) ? error.path : undefined;
    return new GraphQLError(message, { path, extensions: { code: 'INTERNAL', http: { status: 500 } } });
  };
}
