import type { Server } from 'node:http';
import { type ExecutionArgs, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer } from 'ws';

interface Enveloped {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

/**
 * graphql-ws (`graphql-transport-ws`) on the same port and path as HTTP.
 * Every operation goes through `yoga.getEnveloped`, so the plugins that guard
 * HTTP (masking, limits, auth) guard WebSocket operations too. A bad document
 * answers that one operation with errors; the socket and its other
 * subscriptions stay open.
 */
export interface WebSocketOptions {
  /** Checks the connection_init payload once per socket; false closes it with 4403 Forbidden. */
  authenticate: (connectionParams: Record<string, unknown> | undefined) => boolean;
}

export function attachWebSocket(server: Server, yoga: YogaServerInstance<Record<string, unknown>, Record<string, unknown>>, path: string, options: WebSocketOptions) {
  const wss = new WebSocketServer({ server, path });
  const controllers = new WeakMap<object, Map<string, AbortController>>();
  const operations = (extra: object) => {
    let map = controllers.get(extra);
    if (!map) controllers.set(extra, (map = new Map()));
    return map;
  };

  const disposable = useServer(
    {
      onConnect: (ctx) => options.authenticate(ctx.connectionParams as Record<string, unknown> | undefined),
      execute: (args) => (args.rootValue as Enveloped).execute(args) as never,
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args) as never,
      onSubscribe: async (ctx, id, payload) => {
        const controller = new AbortController();
        operations(ctx.extra).set(id, controller);
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          signal: controller.signal,
          connectionParams: ctx.connectionParams,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error instanceof GraphQLError ? error : new GraphQLError(String(error), { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        return {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
      onComplete: (ctx, id) => {
        const map = operations(ctx.extra);
        map.get(id)?.abort();
        map.delete(id);
      },
      onClose: (ctx) => {
        for (const controller of operations(ctx.extra).values()) controller.abort();
        controllers.delete(ctx.extra);
      },
    },
    wss,
  );

  return {
    wss,
    async close(): Promise<void> {
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
