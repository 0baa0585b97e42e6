import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { GraphQLError, Kind } from 'graphql';
import type { AuthContext } from '../auth/api-keys.js';
import { inferqlError } from '../errors.js';
import type { Services } from '../services.js';

/** What every resolver gets: the services, the caller, and the request's abort signal. */
export interface Context {
  services: Services;
  auth: AuthContext;
  /** Aborts when the client goes away (HTTP request closed, subscription completed, socket closed). */
  signal: AbortSignal | undefined;
}

/** The one schema builder: plugins, context and scalars. It defines no types. */
export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  AuthScopes: { infer: boolean; jobs: boolean; admin: boolean };
  Scalars: {
    DateTime: { Input: Date; Output: Date };
  };
}>({
  plugins: [ScopeAuthPlugin, RelayPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({ infer: ctx.auth.scopes.has('infer'), jobs: ctx.auth.scopes.has('jobs'), admin: ctx.auth.scopes.has('admin') }),
    unauthorizedError: (_parent, ctx, info) =>
      ctx.auth.keyId
        ? inferqlError('FORBIDDEN', `This API key may not use ${info.parentType.name}.${info.fieldName}.`)
        : inferqlError('UNAUTHENTICATED'),
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
  },
});

builder.scalarType('DateTime', {
  description: 'An instant, as an ISO 8601 string in UTC.',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value as string).toISOString()),
  parseValue: (value) => {
    const date = new Date(value as string);
    if (typeof value !== 'string' || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO 8601 string.');
    return date;
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING || Number.isNaN(new Date(ast.value).getTime())) throw new GraphQLError('DateTime must be an ISO 8601 string.');
    return new Date(ast.value);
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
