import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { inferqlError } from '../errors.js';
import { type ModelDirectory, type ModelView, PROCESS_ID, viewOf } from '../models/directory.js';
import { type ModelRegistry, STATUS_RANK } from '../models/registry.js';
import { mergeModelStats, type ModelStats } from '../stats.js';
import type { AdminCommand, Channels } from './channels.js';
import { fromWire, type WireError } from './wire.js';

/** What a worker says of itself, under a key that expires unless it keeps saying it. */
export interface WorkerCard {
  id: string;
  startedAt: number;
  models: ModelView[];
  /** Its latest load figures per model (the API's serverStats adds them up). */
  stats: ModelStats[];
}

const BEAT_MS = 2000;
/** How long a model command waits for every worker (a load or reload warms the model up). */
const ADMIN_TIMEOUT_MS = 120_000;

const workerKey = (prefix: string, id: string) => `${prefix}:worker:${id}`;

/**
 * A worker's heartbeat: its models (as ModelViews) under a key that expires
 * after three missed beats, so a dead worker drops out of `models` by itself.
 * It beats at once on every model event, so a load or unload shows quickly.
 */
export class WorkerPresence {
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly registry: ModelRegistry,
    private readonly stats: () => ModelStats[],
    readonly id = PROCESS_ID,
  ) {}

  start(): void {
    void this.beat();
    this.timer = setInterval(() => void this.beat(), BEAT_MS);
    this.timer.unref();
  }

  /** Says now what this worker serves (on every model event). */
  async beat(): Promise<void> {
    const card: WorkerCard = { id: this.id, startedAt: this.startedAt, models: this.registry.list().map((e) => viewOf(e, this.id)), stats: this.stats() };
    await this.redis.set(workerKey(this.prefix, this.id), JSON.stringify(card), 'PX', BEAT_MS * 3).catch(() => undefined);
  }

  /** Leaves at once (a clean stop) rather than after the key expires. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.redis.del(workerKey(this.prefix, this.id)).catch(() => undefined);
  }
}

/** Merges the workers' views of one model: the best status, and every worker where it is READY. */
export function mergeViews(views: readonly ModelView[]): ModelView {
  const best = [...views].sort((a, b) => STATUS_RANK[b.status] - STATUS_RANK[a.status])[0]!;
  return { ...best, workers: views.flatMap((v) => v.workers).sort() };
}

/**
 * The API's view of the models: the union of what the live workers serve,
 * read from their heartbeats (cached for a moment, so a burst of requests
 * reads Redis once).
 */
export class ClusterDirectory implements ModelDirectory {
  private cache: { at: number; cards: Promise<WorkerCard[]> } | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** How model commands reach the workers. */
    private readonly channels: Channels | null = null,
    private readonly cacheMs = 250,
  ) {}

  async workers(): Promise<WorkerCard[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', workerKey(this.prefix, '*'), 'COUNT', 200);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    if (keys.length === 0) return [];
    const cards = await this.redis.mget(keys);
    return cards.filter((c): c is string => c !== null).map((c) => JSON.parse(c) as WorkerCard);
  }

  list(): Promise<ModelView[]> {
    return this.read();
  }

  /** Every live worker's latest figures, merged per model (for serverStats). */
  async stats(): Promise<ModelStats[]> {
    return mergeModelStats((await this.cards()).flatMap((c) => c.stats ?? []));
  }

  /** The live workers' cards, read at most once per `cacheMs`. */
  private cards(): Promise<WorkerCard[]> {
    const now = Date.now();
    if (!this.cache || now - this.cache.at > this.cacheMs) {
      const cards = this.workers();
      this.cache = { at: now, cards };
      cards.catch(() => (this.cache = null));
    }
    return this.cache.cards;
  }

  private async read(): Promise<ModelView[]> {
    const byModel = new Map<string, ModelView[]>();
    for (const card of await this.cards()) {
      for (const view of card.models) byModel.set(view.name, [...(byModel.get(view.name) ?? []), view]);
    }
    return [...byModel.values()].map(mergeViews).sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<ModelView | null> {
    return (await this.list()).find((v) => v.name === name) ?? null;
  }

  /** The model, or MODEL_NOT_FOUND / MODEL_NOT_READY as the local registry says them. */
  async requireReady(name: string): Promise<ModelView> {
    const view = await this.get(name);
    if (!view) throw inferqlError('MODEL_NOT_FOUND', `No model named "${name}" on any live worker.`, { model: name });
    if (view.status !== 'READY') throw inferqlError('MODEL_NOT_READY', `Model "${name}" is ${view.status.toLowerCase()} on every live worker.`, { model: name, status: view.status });
    return view;
  }

  load(name: string): Promise<ModelView> {
    return this.onEveryWorker('load', name);
  }

  unload(name: string): Promise<ModelView> {
    return this.onEveryWorker('unload', name);
  }

  reload(name: string): Promise<ModelView> {
    return this.onEveryWorker('reload', name);
  }

  /**
   * Runs a model command on every live worker and waits for each answer: the
   * merged view when all succeed; otherwise the first worker's error, naming
   * the worker (the others have done it: a reload that fails somewhere leaves
   * the old version serving there).
   */
  private async onEveryWorker(op: AdminCommand['op'], name: string): Promise<ModelView> {
    if (!this.channels) throw inferqlError('UNAVAILABLE', 'This process cannot reach the workers.');
    const { replies, heard } = await this.channels.sendAdmin({ op, model: name }, randomUUID());
    const views: ModelView[] = [];
    const errors: { worker: string; error: WireError }[] = [];
    try {
      const deadline = Date.now() + ADMIN_TIMEOUT_MS;
      while (views.length + errors.length < heard) {
        const reply = await Promise.race([replies.next(), new Promise<null>((r) => setTimeout(() => r(null), Math.max(0, deadline - Date.now())).unref())]);
        if (reply === null) throw inferqlError('TIMEOUT', `${heard - views.length - errors.length} of ${heard} workers did not answer ${op} "${name}" within ${ADMIN_TIMEOUT_MS / 1000} s.`);
        if ('view' in reply) views.push(reply.view);
        else errors.push(reply);
      }
    } finally {
      replies.close();
    }
    this.cache = null;
    if (heard === 0) throw inferqlError('MODEL_NOT_FOUND', `No live worker to ${op} "${name}".`, { model: name });
    const failed = errors[0];
    if (failed) {
      const { code, message, extensions } = failed.error;
      throw fromWire({ code, message: `On worker ${failed.worker}: ${message}`, extensions: { ...extensions, worker: failed.worker } });
    }
    return mergeViews(views);
  }
}
