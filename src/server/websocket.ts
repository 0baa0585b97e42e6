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
  /**
   * Checks the connection_init payload once per socket: the caller's id
   * (API key id, or the client address when auth is off), or null to close
   * the socket with 4403 Forbidden.
   */
  authenticate: (connectionParams: Record<string, unknown> | undefined, address: string) => string | null;
  maxSocketsPerCaller: number;
  maxSubscriptionsPerCaller: number;
}

const TOO_MANY = 4429;

export function attachWebSocket(server: Server, yoga: YogaServerInstance<Record<string, unknown>, Record<string, unknown>>, path: string, options: WebSocketOptions) {
  const wss = new WebSocketServer({ server, path });
  const controllers = new WeakMap<object, Map<string, AbortController>>();
  const operations = (extra: object) => {
    let map = controllers.get(extra);
    if (!map) controllers.set(extra, (map = new Map()));
    return map;
  };

  const sockets = new Map<string, number>();
  const streams = new Map<string, number>();
  const callerOf = new WeakMap<object, string>();
  const bump = (map: Map<string, number>, key: string, by: number) => {
    const n = (map.get(key) ?? 0) + by;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
    return n;
  };

  const disposable = useServer(
    {
      onConnect: (ctx) => {
        const caller = options.authenticate(ctx.connectionParams as Record<string, unknown> | undefined, ctx.extra.request.socket.remoteAddress ?? 'unknown');
        if (caller === null) return false;
        if ((sockets.get(caller) ?? 0) >= options.maxSocketsPerCaller) {
          ctx.extra.socket.close(TOO_MANY, 'Too many connections for this key');
          return false;
        }
        bump(sockets, caller, 1);
        callerOf.set(ctx.extra, caller);
        return true;
      },
      execute: (args) => (args.rootValue as Enveloped).execute(args) as never,
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args) as never,
      onSubscribe: async (ctx, id, payload) => {
        const caller = callerOf.get(ctx.extra) ?? 'unknown';
        if ((streams.get(caller) ?? 0) >= options.maxSubscriptionsPerCaller) {
          return [new GraphQLError(`At most ${options.maxSubscriptionsPerCaller} open subscriptions per key.`, { extensions: { code: 'TOO_MANY_CONNECTIONS' } })];
        }
        const controller = new AbortController();
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
          const message = error instanceof Error ? error.message : String(error);
          const code = (error as GraphQLError).extensions?.code ?? 'GRAPHQL_PARSE_FAILED';
          return [new GraphQLError(message, { extensions: { ...(error as GraphQLError).extensions, code } })];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) {
          return errors.map((e: GraphQLError) => (e.extensions?.code ? e : new GraphQLError(e.message, { nodes: e.nodes, extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } })));
        }
        const contextValue = await contextFactory();
        operations(ctx.extra).set(id, controller);
        bump(streams, caller, 1);
        return {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue,
          rootValue: { execute, subscribe },
        };
      },
      onComplete: (ctx, id) => {
        const map = operations(ctx.extra);
        if (map.has(id)) bump(streams, callerOf.get(ctx.extra) ?? 'unknown', -1);
        map.get(id)?.abort();
        map.delete(id);
      },
      onClose: (ctx) => {
        const caller = callerOf.get(ctx.extra);
        const open = operations(ctx.extra);
        for (const controller of open.values()) controller.abort();
        if (caller) {
          bump(streams, caller, -open.size);
          bump(sockets, caller, -1);
        }
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
