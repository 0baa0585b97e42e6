import { ConfigError, loadConfig, usage } from './config.js';
import { createLogger } from './log.js';
import { redactUrl } from './cluster/redis.js';
import { buildApp } from './server/app.js';

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(usage());
    return;
  }
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`inferql: bad configuration: ${error.message}\n\n${usage()}`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const app = await buildApp(config, log);
  const { url } = await app.start();
  const models = app.services.registry.list().map((m) => `${m.name}:${m.status}`);
  log.info(`inferql listening on ${url} (GraphiQL in a browser)`, { role: config.role, ...(config.redisUrl ? { redis: redactUrl(config.redisUrl) } : {}), models });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: shutting down (grace ${config.shutdownGraceMs} ms)`);
    try {
      await app.stop();
      log.info('stopped cleanly');
      process.exit(0);
    } catch (error) {
      log.error('shutdown failed', { error: String(error) });
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error) => {
  console.error('inferql: failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
