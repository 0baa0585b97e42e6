import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import type { Redis } from 'ioredis';
import type { ModelCalls } from '../calls/model-calls.js';
import type { Config } from '../config.js';
import type { GenerationService } from '../generation/service.js';
import type { InferenceService } from '../inference/service.js';
import type { JobRunner } from '../jobs/runner.js';
import { RedisJobStore } from '../jobs/redis-store.js';
import type { Change } from '../jobs/store.js';
import type { Logger } from '../log.js';
import { viewOf } from '../models/directory.js';
import type { ModelRegistry } from '../models/registry.js';
import type { ModelStats } from '../stats.js';
import { CallWorkers } from './call-workers.js';
import { type AdminCommand, type AdminReply, Channels } from './channels.js';
import { QueuedJobRunner } from './job-queue.js';
import { ClusterDirectory, WorkerPresence } from './presence.js';
import { ClusterQueues } from './queues.js';
import { connectRedis } from './redis.js';
import { RemoteModelCalls } from './remote-calls.js';
import { toWire } from './wire.js';

type EventTarget = ReturnType<typeof createRedisEventTarget>;

/** What a process that runs models hands the cluster. */
export interface LocalParts {
  registry: ModelRegistry;
  inference: InferenceService;
  generation: GenerationService;
  calls: ModelCalls;
  /** This process's own per-model figures, for its heartbeat. */
  stats: () => ModelStats[];
}

/**
 * Distributed mode, put together: the Redis connections, the event bus over
 * Redis pub/sub, the shared job store, BullMQ queues, and by role the API
 * side (calls sent to workers, the directory of workers' models) and the
 * worker side (taking calls and jobs for the models it serves, heartbeats).
 */
export class Cluster {
  readonly directory: ClusterDirectory;
  readonly calls: RemoteModelCalls;
  /** The job store requests use: fails fast while Redis is away. */
  readonly store: RedisJobStore;
  /** The one running jobs write to: waits for Redis to come back, so an outcome is not lost to a blip. */
  private readonly workerStore: RedisJobStore;
  readonly eventTarget: EventTarget;
  private readonly queues: ClusterQueues;
  private readonly channels: Channels;
  private presence: WorkerPresence | null = null;
  private callWorkers: CallWorkers | null = null;
  private runner: QueuedJobRunner | null = null;

  private constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly connections: { commands: Redis; blocking: Redis; pub: Redis; sub: Redis },
  ) {
    const { commands, blocking, pub, sub } = connections;
    const prefix = config.redisPrefix;
    this.eventTarget = prefixed(createRedisEventTarget({ publishClient: pub, subscribeClient: sub }), `${prefix}:events:`);
    this.store = new RedisJobStore(commands, { prefix: `${prefix}:` });
    this.workerStore = new RedisJobStore(pub, { prefix: `${prefix}:` });
    this.queues = new ClusterQueues(commands, blocking, prefix);
    this.channels = new Channels(pub, sub, prefix);
    this.directory = new ClusterDirectory(commands, prefix, this.channels);
    this.calls = new RemoteModelCalls(this.queues, this.directory, this.channels, config);
  }

  /** Connects to Redis; an unreachable Redis is a StartupError. */
  static async connect(config: Config, log: Logger): Promise<Cluster> {
    const url = config.redisUrl!;
    const connections: Redis[] = [];
    try {
      const commands = await connectRedis(url, 'commands', log, { failFast: true });
      connections.push(commands);
      for (const name of ['blocking', 'pub', 'sub'] as const) connections.push(await connectRedis(url, name, log));
      const [, blocking, pub, sub] = connections as [Redis, Redis, Redis, Redis];
      return new Cluster(config, log, { commands, blocking, pub, sub });
    } catch (error) {
      for (const c of connections) c.disconnect();
      throw error;
    }
  }

  get hasWorker(): boolean {
    return this.config.role !== 'api';
  }

  /** Whether Redis answers: readiness, and every request's precondition. */
  isUp(): boolean {
    return Object.values(this.connections).every((c) => c.status === 'ready');
  }

  /** The job runner: it queues jobs, and in a worker also runs them. */
  jobRunner(publish: (change: Change) => void, local: LocalParts): JobRunner {
    this.runner = new QueuedJobRunner({
      store: this.workerStore,
      queues: this.queues,
      channels: this.channels,
      publish,
      config: this.config,
      log: this.log,
      ...(this.hasWorker ? { worker: { connection: this.connections.blocking, ...local } } : {}),
    });
    return this.runner;
  }

  /** A worker starts taking calls and saying what it serves (after its models load). */
  async startWorker(local: LocalParts): Promise<void> {
    if (!this.hasWorker) return;
    const { config, log } = this;
    this.callWorkers = new CallWorkers(local.calls, local.registry, this.channels, {
      connection: this.connections.blocking,
      prefix: config.redisPrefix,
      concurrency: config.workerConcurrency,
      stallMs: config.stallMs,
      log,
    });
    await this.callWorkers.start();
    this.presence = new WorkerPresence(this.connections.commands, config.redisPrefix, local.registry, local.stats);
    this.presence.start();
    await this.channels.onAdmin((command) => void this.runAdmin(command, local.registry));
  }

  /** A model command from an API process: run it on this worker's registry and answer. */
  private async runAdmin(command: AdminCommand, registry: ModelRegistry): Promise<void> {
    const worker = this.presence!.id;
    let reply: AdminReply;
    try {
      reply = { worker, view: viewOf(await registry[command.op](command.model), worker) };
    } catch (error) {
      reply = { worker, error: toWire(error) };
    }
    await this.channels.replyAdmin(command.replyTo, reply).catch((error) => this.log.warn('answering a model command failed', { error: String(error) }));
  }

  /** A model changed here: take (or stop taking) its calls and jobs, and say so. */
  modelChanged(): void {
    this.callWorkers?.sync();
    this.runner?.sync();
    void this.presence?.beat();
  }

  /** Stops taking calls (the first step of a shutdown). */
  pause(): void {
    this.callWorkers?.pause();
  }

  async close(): Promise<void> {
    await this.presence?.stop();
    await this.callWorkers?.close();
    await this.queues.close();
    for (const c of Object.values(this.connections)) c.disconnect();
  }
}

/** Namespaces the event bus's channels, so deployments sharing a Redis do not hear each other. */
function prefixed(target: EventTarget, prefix: string): EventTarget {
  return {
    addEventListener: (type, listener) => target.addEventListener(prefix + type, listener),
    removeEventListener: (type, listener) => target.removeEventListener(prefix + type, listener),
    dispatchEvent: (event) => target.dispatchEvent(new CustomEvent(prefix + event.type, { detail: (event as CustomEvent).detail })),
  };
}
