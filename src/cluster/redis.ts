import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log.js';

/** Redis could not be reached at start: the process stops with this message. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/**
 * Opens a connection and checks it answers PING; a Redis that cannot be
 * reached at start is a StartupError naming the URL and the reason. Once up,
 * the connection reconnects by itself (every 0.2 to 2 s) for as long as the
 * process lives: losing Redis later costs readiness, not the process.
 *
 * `failFast` connections (the ones requests use) reject commands at once
 * while Redis is away instead of queueing them, so a request gets
 * UNAVAILABLE rather than hanging; BullMQ's own connections wait instead.
 */
export async function connectRedis(url: string, name: string, log: Logger, options: { failFast?: boolean } = {}): Promise<Redis> {
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    connectionName: `inferql-${name}`,
    maxRetriesPerRequest: options.failFast ? 1 : null,
    enableOfflineQueue: !options.failFast,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  };
  const redis = new Redis(url, redisOptions);
  let lastError: Error | null = null;
  let wasUp = true;
  redis.on('error', (error: Error) => {
    lastError = error;
    if (wasUp) log.warn('Redis connection lost; reconnecting', { connection: name, error: error.message });
    wasUp = false;
  });
  redis.on('ready', () => {
    if (!wasUp) log.info('Redis connection back', { connection: name });
    wasUp = true;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    const reason = (lastError as Error | null)?.message ?? (error as Error).message;
    throw new StartupError(`cannot reach Redis at ${redactUrl(url)}: ${reason}`);
  }
  return redis;
}
