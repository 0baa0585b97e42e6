import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import { createYoga, type Plugin } from 'graphql-yoga';
import { bearer } from '../auth/api-keys.js';
import type { Config } from '../config.js';
import { inferqlError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { Context } from '../schema/builder.js';
import { schema } from '../schema/index.js';
import { createServices, type Services } from '../services.js';
import { graphiqlOptions, renderInferqlGraphiQL } from './graphiql.js';
import { createMaskError } from './mask-error.js';
import { useClusterAvailability } from './use-cluster-availability.js';
import { useErrorCodes } from './use-error-codes.js';
import { useHealth } from './use-health.js';
import { useStatusPage } from './status-page.js';
import { InflightCounter, useInflight } from './use-inflight.js';
import { useQueryLimits } from './use-query-limits.js';
import { RateLimiter, useBodyLimit, useRateLimit } from './use-request-limits.js';
import { useSubscriptionGauge } from './use-subscription-gauge.js';
import { attachWebSocket } from './websocket.js';

export const GRAPHQL_PATH = '/graphql';

export interface App {
  services: Services;
  server: Server;
  /** Listens; resolves with the bound port. */
  start(): Promise<{ port: number; url: string }>;
  /**
   * Graceful stop: no new connections, in-flight requests and streams get
   * `graceMs` (default SHUTDOWN_GRACE_MS) to finish, then streams end with
   * CANCELLED, running jobs stay recoverable, models are freed.
   */
  stop(graceMs?: number): Promise<void>;
}

interface InitialContext {
  request?: Request;
  signal?: AbortSignal;
  /** graphql-ws connection_init payload. */
  connectionParams?: Record<string, unknown>;
}

/** The API key of a request: `Authorization: Bearer …` over HTTP/SSE, `authorization` or `apiKey` in connection_init over WebSocket. */
function presentedKey(initial: InitialContext): string | null {
  const params = initial.connectionParams;
  if (params) return bearer((params.authorization ?? params.Authorization ?? params.apiKey) as string | undefined);
  return bearer(initial.request?.headers.get('authorization'));
}

function buildContext(services: Services, initial: InitialContext): Context {
  const auth = services.auth.authenticate(presentedKey(initial));
  if (!auth) throw inferqlError('UNAUTHENTICATED', 'A valid API key is required: send Authorization: Bearer <key>.');
  return { services, auth, signal: initial.signal ?? initial.request?.signal };
}

/** Whose rate-limit bucket an operation uses: its API key, or its client address when auth is off. */
function callerOf(context: Record<string, unknown>): string {
  const ctx = context as unknown as Context & { request?: Request; req?: { socket?: { remoteAddress?: string } } };
  return ctx.auth?.keyId ?? ctx.req?.socket?.remoteAddress ?? ctx.request?.headers.get('x-forwarded-for') ?? 'anonymous';
}

export function createYogaServer(services: Services, log: Logger, inflight = new InflightCounter(), extraPlugins: Plugin[] = []) {
  const { config } = services;
  return createYoga<InitialContext, Context>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    graphiql: graphiqlOptions({ authEnabled: services.auth.enabled }),
    renderGraphiQL: renderInferqlGraphiQL,
    maskedErrors: { maskError: createMaskError(log) },
    logging: {
      debug: (...args) => log.debug(args.map(String).join(' ')),
      info: (...args) => log.info(args.map(String).join(' ')),
      warn: (...args) => log.warn(args.map(String).join(' ')),
      error: (...args) => log.error(args.map(String).join(' ')),
    },
    context: (initial) => buildContext(services, initial),
    plugins: [
      useHealth({ isReady: () => services.isReady() }),
      useStatusPage(),
      useErrorCodes(),
      services.cluster && useClusterAvailability(() => services.cluster!.isUp()),
      config.role === 'worker' && useWorkerEndpoints(),
      useInflight(inflight),
      useBodyLimit(config.maxBodyBytes),
      ...useQueryLimits(config),
      config.rateLimitPerSecond > 0 && useRateLimit(new RateLimiter(config.rateLimitPerSecond, config.rateLimitBurst), callerOf),
      usePrometheus({ registry: services.metrics.registry, endpoint: '/metrics' }),
      useSubscriptionGauge(services.metrics.subscriptions),
      ...extraPlugins,
    ].filter((p): p is Plugin => Boolean(p)),
  });
}

/** A worker process answers /health, /ready and /metrics; GraphQL is the API processes' job. */
function useWorkerEndpoints(): Plugin {
  return {
    onRequest({ url, endResponse, fetchAPI }) {
      if (url.pathname === GRAPHQL_PATH) {
        const body = { error: 'This is a worker process (ROLE=worker): send GraphQL to an API process.' };
        endResponse(Response.json(body, { status: 404 }) as unknown as InstanceType<typeof fetchAPI.Response>);
      }
    },
  };
}

/** Builds the whole server: services, Yoga on HTTP/SSE, graphql-ws on the same port. */
export async function buildApp(config: Config, log: Logger = createLogger(config.logLevel)): Promise<App> {
  const services = await createServices(config, log);
  const inflight = new InflightCounter();
  const yoga = createYogaServer(services, log, inflight);
  const server = createServer(yoga);
  const ws = attachWebSocket(server, yoga as never, GRAPHQL_PATH, {
    authenticate: (params, address) => {
      const auth = services.auth.authenticate(presentedKey({ connectionParams: params ?? {} }));
      return auth ? (auth.keyId ?? address) : null;
    },
    maxSocketsPerCaller: config.maxSocketsPerKey,
    maxSubscriptionsPerCaller: config.maxSubscriptionsPerKey,
  });

  return {
    services,
    server,
    start: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          const { port } = server.address() as AddressInfo;
          const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
          resolve({ port, url: `http://${host}:${port}${GRAPHQL_PATH}` });
        });
      }),
    stop: async (graceMs = config.shutdownGraceMs) => {
      // 1. Take no new connections or jobs; idle keep-alive sockets go now.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      services.pause();
      // 2. In-flight requests and streams get the grace period to finish.
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && (inflight.count > 0 || !services.isIdle())) await new Promise((r) => setTimeout(r, 20));
      // 3. Then running jobs go back to the queue for the next start, and streams end with finishReason CANCELLED.
      await services.close(Math.max(0, deadline - Date.now()));
      await ws.close();
      server.closeAllConnections();
      await closed;
    },
  };
}
