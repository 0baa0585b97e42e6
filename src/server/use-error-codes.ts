import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

type Result = { errors?: readonly GraphQLError[] };

/** Gives `extensions.code` to errors graphql-js raises without one (variable coercion): BAD_INPUT. */
export function tagUntyped<R extends Result>(result: R): R {
  if (!result.errors?.some((e) => !e.extensions?.code)) return result;
  const errors = result.errors.map((e) =>
    e.extensions?.code ? e : new GraphQLError(e.message, { nodes: e.nodes, path: e.path, originalError: e.originalError, extensions: { ...e.extensions, code: 'BAD_INPUT' } }),
  );
  return { ...result, errors };
}

/** Every error a client sees carries `extensions.code`, over HTTP, SSE and WebSocket alike. */
export function useErrorCodes(): Plugin {
  return {
    onExecute() {
      return {
        onExecuteDone({ result, setResult }) {
          if (result && 'errors' in result && !(Symbol.asyncIterator in result)) setResult(tagUntyped(result as Result) as never);
        },
      };
    },
    onSubscribe() {
      return {
        onSubscribeResult({ result, setResult }) {
          if (result && 'errors' in result && !(Symbol.asyncIterator in result)) setResult(tagUntyped(result as Result) as never);
        },
      };
    },
  };
}
