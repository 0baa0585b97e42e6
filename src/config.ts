import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

export type Role = 'api' | 'worker' | 'all';

/** Everything the server can be told, typed and validated in one place. */
export interface Config {
  command: 'serve' | 'worker';
  role: Role;
  port: number;
  host: string;
  modelsDir: string;
  dataDir: string;
  redisUrl: string | undefined;
  redisPrefix: string;
  /** Calls a worker process takes at once per model. */
  workerConcurrency: number;
  /** How long a silent worker has before its jobs move on. */
  stallMs: number;
  apiKeys: string | undefined;
  apiKeysFile: string | undefined;
  /** Server-wide batching defaults; a model's inferql.json may override them. */
  maxBatchSize: number;
  maxQueueDelayMs: number;
  maxQueueSize: number;
  /** Deadline for a request that names none. */
  defaultDeadlineMs: number;
  maxTensorElements: number;
  /** Generation limits. */
  maxTokens: number;
  maxPromptTokens: number;
  maxRunningSequences: number;
  maxWaitingSequences: number;
  maxBatchTokens: number;
  /** Jobs. */
  jobRetentionDays: number;
  jobMaxAttempts: number;
  /** Jobs run at once by this process's worker. */
  jobConcurrency: number;
  shutdownGraceMs: number;
  /** Query limits (graphql-armor) and abuse limits. */
  introspection: boolean;
  maxDepth: number;
  maxCost: number;
  maxAliases: number;
  maxTokensPerDocument: number;
  maxDirectives: number;
  maxBodyBytes: number;
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  maxSocketsPerKey: number;
  maxSubscriptionsPerKey: number;
  /** How often the serverStats subscription samples the server. */
  statsIntervalMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Kind = 'int' | 'string' | 'path' | 'bool';

interface OptionSpec<K extends keyof Config> {
  key: K;
  flag: string;
  env: string;
  kind: Kind;
  default: Config[K];
  min?: number;
  max?: number;
  choices?: readonly string[];
  help: string;
}

function option<K extends keyof Config>(spec: OptionSpec<K>): OptionSpec<K> {
  return spec;
}

/** The config reference: the README's table is this list. */
export const OPTIONS = [
  option({ key: 'port', flag: 'port', env: 'PORT', kind: 'int', default: 4000, min: 0, max: 65535, help: 'TCP port for HTTP, SSE and WebSocket (0 picks a free one).' }),
  option({ key: 'host', flag: 'host', env: 'HOST', kind: 'string', default: '127.0.0.1', help: 'Interface to listen on; 0.0.0.0 for all.' }),
  option({ key: 'modelsDir', flag: 'models', env: 'MODELS_DIR', kind: 'path', default: './models', help: 'Folder whose sub-folders are models.' }),
  option({ key: 'dataDir', flag: 'data', env: 'DATA_DIR', kind: 'path', default: './data', help: 'Folder for the SQLite job store.' }),
  option({ key: 'redisUrl', flag: 'redis', env: 'REDIS_URL', kind: 'string', default: undefined, help: 'Redis URL (redis://host:port/db): distributed mode, with BullMQ queues, Redis pub/sub and a Redis job store.' }),
  option({ key: 'role', flag: 'role', env: 'ROLE', kind: 'string', default: 'all', choices: ['api', 'worker', 'all'], help: 'api (GraphQL, no models), worker (models, no GraphQL) or all; api and worker need REDIS_URL.' }),
  option({ key: 'redisPrefix', flag: 'redis-prefix', env: 'REDIS_PREFIX', kind: 'string', default: 'inferql', help: 'Prefix of every Redis key, queue and channel (several deployments can share one Redis).' }),
  option({ key: 'workerConcurrency', flag: 'worker-concurrency', env: 'WORKER_CONCURRENCY', kind: 'int', default: 64, min: 1, max: 10_000, help: 'Calls a worker takes at once per model from its queue (they meet in its batcher or decode scheduler).' }),
  option({ key: 'stallMs', flag: 'stall-ms', env: 'STALL_MS', kind: 'int', default: 30_000, min: 500, max: 3_600_000, help: 'A worker silent this long is taken for dead: its jobs go to another worker, its calls fail with UNAVAILABLE.' }),
  option({ key: 'apiKeys', flag: 'api-keys', env: 'API_KEYS', kind: 'string', default: undefined, help: 'key=scope+scope,key2=scope; unset leaves the server open.' }),
  option({ key: 'apiKeysFile', flag: 'api-keys-file', env: 'API_KEYS_FILE', kind: 'path', default: undefined, help: 'File of key=scope+scope lines, added to API_KEYS.' }),
  option({ key: 'maxBatchSize', flag: 'max-batch-size', env: 'MAX_BATCH_SIZE', kind: 'int', default: 32, min: 1, max: 4096, help: 'Default largest batch per session.run; 1 turns batching off.' }),
  option({ key: 'maxQueueDelayMs', flag: 'max-queue-delay-ms', env: 'MAX_QUEUE_DELAY_MS', kind: 'int', default: 2, min: 0, max: 60_000, help: 'Default longest wait for a batch to fill.' }),
  option({ key: 'maxQueueSize', flag: 'max-queue-size', env: 'MAX_QUEUE_SIZE', kind: 'int', default: 1024, min: 1, max: 1_000_000, help: 'Default requests waiting per model before QUEUE_FULL.' }),
  option({ key: 'defaultDeadlineMs', flag: 'deadline-ms', env: 'DEADLINE_MS', kind: 'int', default: 30_000, min: 1, max: 3_600_000, help: 'Queue deadline for requests that name none.' }),
  option({ key: 'maxTensorElements', flag: 'max-tensor-elements', env: 'MAX_TENSOR_ELEMENTS', kind: 'int', default: 1_000_000, min: 1, max: 1_000_000_000, help: 'Largest element count of one input tensor.' }),
  option({ key: 'maxTokens', flag: 'max-tokens', env: 'MAX_TOKENS', kind: 'int', default: 512, min: 1, max: 1_000_000, help: 'Largest maxTokens a generation may ask for.' }),
  option({ key: 'maxPromptTokens', flag: 'max-prompt-tokens', env: 'MAX_PROMPT_TOKENS', kind: 'int', default: 1024, min: 1, max: 1_000_000, help: 'Longest prompt, in tokens.' }),
  option({ key: 'maxRunningSequences', flag: 'max-running-sequences', env: 'MAX_RUNNING_SEQUENCES', kind: 'int', default: 16, min: 1, max: 4096, help: 'Sequences decoded together in one step.' }),
  option({ key: 'maxWaitingSequences', flag: 'max-waiting-sequences', env: 'MAX_WAITING_SEQUENCES', kind: 'int', default: 512, min: 0, max: 1_000_000, help: 'Generations waiting for a slot before QUEUE_FULL.' }),
  option({ key: 'maxBatchTokens', flag: 'max-batch-tokens', env: 'MAX_BATCH_TOKENS', kind: 'int', default: 4096, min: 1, max: 1_000_000, help: 'Prompt tokens one prefill step may take.' }),
  option({ key: 'jobRetentionDays', flag: 'job-retention-days', env: 'JOB_RETENTION_DAYS', kind: 'int', default: 7, min: 0, max: 36_500, help: 'Days a finished job is kept.' }),
  option({ key: 'jobMaxAttempts', flag: 'job-max-attempts', env: 'JOB_MAX_ATTEMPTS', kind: 'int', default: 3, min: 1, max: 100, help: 'Runs of an interrupted job before it fails with INTERRUPTED.' }),
  option({ key: 'jobConcurrency', flag: 'job-concurrency', env: 'JOB_CONCURRENCY', kind: 'int', default: 32, min: 1, max: 10_000, help: 'Jobs one process runs at once (per model in distributed mode); they share batches with live traffic.' }),
  option({ key: 'shutdownGraceMs', flag: 'shutdown-grace-ms', env: 'SHUTDOWN_GRACE_MS', kind: 'int', default: 10_000, min: 0, max: 600_000, help: 'Time in-flight work gets to finish on SIGTERM.' }),
  option({ key: 'introspection', flag: 'introspection', env: 'INTROSPECTION', kind: 'bool', default: true, help: 'Allow schema introspection (off also hides field suggestions).' }),
  option({ key: 'maxDepth', flag: 'max-depth', env: 'MAX_DEPTH', kind: 'int', default: 12, min: 1, max: 1000, help: 'Deepest selection a document may have.' }),
  option({ key: 'maxCost', flag: 'max-cost', env: 'MAX_COST', kind: 'int', default: 200_000, min: 1, max: 100_000_000, help: 'Highest cost (graphql-armor) a document may have.' }),
  option({ key: 'maxAliases', flag: 'max-aliases', env: 'MAX_ALIASES', kind: 'int', default: 30, min: 0, max: 10_000, help: 'Most aliases in one document.' }),
  option({ key: 'maxTokensPerDocument', flag: 'max-document-tokens', env: 'MAX_DOCUMENT_TOKENS', kind: 'int', default: 20_000, min: 10, max: 10_000_000, help: 'Most lexical tokens in one document.' }),
  option({ key: 'maxDirectives', flag: 'max-directives', env: 'MAX_DIRECTIVES', kind: 'int', default: 50, min: 0, max: 10_000, help: 'Most directives in one document.' }),
  option({ key: 'maxBodyBytes', flag: 'max-body-bytes', env: 'MAX_BODY_BYTES', kind: 'int', default: 16 * 1024 * 1024, min: 1024, max: 1024 * 1024 * 1024, help: 'Largest HTTP request body.' }),
  option({ key: 'rateLimitPerSecond', flag: 'rate-limit', env: 'RATE_LIMIT', kind: 'int', default: 0, min: 0, max: 1_000_000, help: 'Operations per second per API key (or client address); 0 is unlimited.' }),
  option({ key: 'rateLimitBurst', flag: 'rate-limit-burst', env: 'RATE_LIMIT_BURST', kind: 'int', default: 100, min: 1, max: 1_000_000, help: 'Operations a key may send at once above the rate.' }),
  option({ key: 'maxSocketsPerKey', flag: 'max-sockets-per-key', env: 'MAX_SOCKETS_PER_KEY', kind: 'int', default: 64, min: 1, max: 1_000_000, help: 'Open WebSocket connections per API key (or client address).' }),
  option({ key: 'maxSubscriptionsPerKey', flag: 'max-subscriptions-per-key', env: 'MAX_SUBSCRIPTIONS_PER_KEY', kind: 'int', default: 256, min: 1, max: 1_000_000, help: 'Open subscriptions per API key (or client address).' }),
  option({ key: 'statsIntervalMs', flag: 'stats-interval-ms', env: 'STATS_INTERVAL_MS', kind: 'int', default: 1000, min: 50, max: 60_000, help: 'How often serverStats (the status page) samples queues and throughput.' }),
  option({ key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', kind: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error', 'silent'], help: 'Log verbosity.' }),
] as const;

function parseValue(spec: OptionSpec<keyof Config>, raw: string, source: string): unknown {
  const where = source;
  if (spec.kind === 'bool') {
    if (/^(1|true|yes|on)$/i.test(raw.trim())) return true;
    if (/^(0|false|no|off)$/i.test(raw.trim())) return false;
    throw new ConfigError(`${where}: expected true or false, got "${raw}"`);
  }
  if (spec.kind === 'int') {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${where}: expected an integer, got "${raw}"`);
    const value = Number(raw);
    if (spec.min !== undefined && value < spec.min) throw new ConfigError(`${where}: must be ≥ ${spec.min}, got ${value}`);
    if (spec.max !== undefined && value > spec.max) throw new ConfigError(`${where}: must be ≤ ${spec.max}, got ${value}`);
    return value;
  }
  if (raw.trim() === '') throw new ConfigError(`${where}: must not be empty`);
  if (spec.choices && !spec.choices.includes(raw)) {
    throw new ConfigError(`${where}: must be one of ${spec.choices.join(', ')}, got "${raw}"`);
  }
  return spec.kind === 'path' ? resolve(raw) : raw;
}

/**
 * Builds the config from command-line arguments and the environment. Flags
 * win over the environment, the environment over defaults. Throws
 * ConfigError with a message fit for a person.
 */
export function loadConfig(argv: readonly string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Config {
  const flagOptions = Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'string' as const }]));
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...flagOptions, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const [command = 'serve', ...rest] = parsed.positionals;
  if (command !== 'serve' && command !== 'worker') throw new ConfigError(`unknown command "${command}": use serve or worker`);
  if (rest.length > 0) throw new ConfigError(`unexpected arguments: ${rest.join(' ')}`);

  const config: Record<string, unknown> = { command };
  for (const spec of OPTIONS as readonly OptionSpec<keyof Config>[]) {
    const flagValue = (parsed.values as Record<string, string | undefined>)[spec.flag];
    const envValue = env[spec.env];
    if (flagValue !== undefined) config[spec.key] = parseValue(spec, flagValue, `--${spec.flag}`);
    else if (envValue !== undefined && envValue !== '') config[spec.key] = parseValue(spec, envValue, spec.env);
    else config[spec.key] = spec.kind === 'path' && typeof spec.default === 'string' ? resolve(spec.default) : spec.default;
  }
  if (command === 'worker') config.role = 'worker';
  const result = config as unknown as Config;
  if (result.role !== 'all' && !result.redisUrl) {
    throw new ConfigError(`role "${result.role}" needs REDIS_URL (--redis): only "all" runs without Redis`);
  }
  if (result.redisUrl && !/^rediss?:\/\//.test(result.redisUrl)) throw new ConfigError(`REDIS_URL must start with redis:// or rediss://, got "${result.redisUrl}"`);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(result.redisPrefix)) throw new ConfigError(`REDIS_PREFIX must be 1 to 64 letters, digits, _ or -, got "${result.redisPrefix}"`);
  return result;
}

export function usage(): string {
  const lines = OPTIONS.map((o) => `  --${o.flag.padEnd(24)} ${o.env.padEnd(22)} ${o.help} (default: ${o.default ?? 'unset'})`);
  return ['Usage: inferql [serve|worker] [flags]', '', '  flag                       env', ...lines].join('\n');
}

/** A config for tests and embedding: defaults plus overrides, no argv or env read. */
export function configWith(overrides: Partial<Config>): Config {
  return { ...loadConfig([], {}), ...overrides };
}
