import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { inferqlError } from '../errors.js';
import { ModelSession } from '../runtime/session.js';
import { ModelInstance } from './instance.js';
import { type ModelManifest, readManifest } from './manifest.js';
import { TextTokenizer } from './tokenizer.js';

export type ModelStatus = 'LOADING' | 'READY' | 'FAILED' | 'UNLOADED';

/** One model's status across processes, best first: ready anywhere beats loading anywhere, which beats failed, then unloaded. */
export const STATUS_RANK: Record<ModelStatus, number> = { READY: 3, LOADING: 2, FAILED: 1, UNLOADED: 0 };

export type ModelEventKind = 'LOADING' | 'READY' | 'FAILED' | 'UNLOADED' | 'RELOADING' | 'SWITCHED' | 'DRAINED';

export interface ModelEvent {
  model: string;
  kind: ModelEventKind;
  status: ModelStatus;
  message: string | null;
  at: Date;
}

/** What the registry knows of one model folder. */
export interface ModelEntry {
  name: string;
  status: ModelStatus;
  error: string | null;
  manifest: ModelManifest | null;
  instance: ModelInstance | null;
}

export interface RegistryOptions {
  modelsDir: string;
  onEvent?: (event: ModelEvent) => void;
  /** Checks a fresh instance fits its task; a throw makes the model FAILED with that message. */
  validate?: (instance: ModelInstance) => void;
  /** Called on a fresh instance before it takes traffic (warm-up). */
  warmUp?: (instance: ModelInstance) => Promise<void>;
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The models directory as a set of models with a status each. Loading one
 * folder never affects the others; operations on one model run one at a time.
 */
export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly options: RegistryOptions) {}

  /** Finds model folders (every non-hidden sub-folder). */
  async scan(): Promise<void> {
    if (!existsSync(this.options.modelsDir)) return;
    const dirents = await readdir(this.options.modelsDir, { withFileTypes: true });
    for (const d of dirents) {
      if (d.isDirectory() && MODEL_NAME.test(d.name) && !this.entries.has(d.name)) {
        this.entries.set(d.name, { name: d.name, status: 'UNLOADED', error: null, manifest: null, instance: null });
      }
    }
  }

  async loadAll(): Promise<void> {
    await this.scan();
    await Promise.all([...this.entries.keys()].map((name) => this.load(name)));
  }

  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ModelEntry | undefined {
    return this.entries.get(name);
  }

  /** The serving instance of `name`, or a MODEL_NOT_FOUND / MODEL_NOT_READY error. */
  ready(name: string): ModelInstance {
    const entry = this.entries.get(name);
    if (!entry) throw inferqlError('MODEL_NOT_FOUND', `No model named "${name}".`, { model: name });
    if (entry.status !== 'READY' || !entry.instance) {
      throw inferqlError('MODEL_NOT_READY', `Model "${name}" is ${entry.status.toLowerCase()}.`, { model: name, status: entry.status });
    }
    return entry.instance;
  }

  allReady(): boolean {
    return [...this.entries.values()].every((e) => e.status === 'READY' || e.status === 'FAILED' || e.status === 'UNLOADED');
  }

  load(name: string): Promise<ModelEntry> {
    return this.exclusive(name, async (entry) => {
      if (entry.status === 'READY') return entry;
      this.transition(entry, 'LOADING', 'LOADING');
      try {
        entry.instance = await this.createInstance(entry);
        entry.error = null;
        this.transition(entry, 'READY', 'READY');
      } catch (error) {
        entry.error = (error as Error).message;
        entry.instance = null;
        this.transition(entry, 'FAILED', 'FAILED', entry.error);
      }
      return entry;
    });
  }

  unload(name: string): Promise<ModelEntry> {
    return this.exclusive(name, async (entry) => {
      const old = entry.instance;
      entry.instance = null;
      entry.error = null;
      this.transition(entry, 'UNLOADED', 'UNLOADED');
      await old?.dispose();
      return entry;
    });
  }

  /**
   * Loads the folder again beside the serving instance, warms it up, switches
   * new requests to it, then drains and frees the old one. If the new files
   * fail to load, the old instance keeps serving and the error is returned.
   */
  reload(name: string): Promise<ModelEntry> {
    return this.exclusive(name, async (entry) => {
      const old = entry.instance;
      if (!old) {
        this.transition(entry, 'LOADING', 'LOADING');
      } else {
        this.emit(entry, 'RELOADING');
      }
      let fresh: ModelInstance;
      try {
        fresh = await this.createInstance(entry);
      } catch (error) {
        const message = (error as Error).message;
        if (old) {
          this.emit(entry, 'FAILED', message);
          throw inferqlError('BAD_INPUT', `Reload of "${name}" failed; the old version keeps serving: ${message}`, { model: name });
        }
        entry.error = message;
        this.transition(entry, 'FAILED', 'FAILED', message);
        return entry;
      }
      entry.instance = fresh;
      entry.error = null;
      if (old) {
        this.emit(entry, 'SWITCHED');
        entry.status = 'READY';
        await old.dispose();
        this.emit(entry, 'DRAINED');
      } else {
        this.transition(entry, 'READY', 'READY');
      }
      return entry;
    });
  }

  /** Unloads every model, draining in-flight work. */
  async close(): Promise<void> {
    await Promise.all([...this.entries.keys()].map((name) => this.unload(name).catch(() => undefined)));
  }

  private async createInstance(entry: ModelEntry): Promise<ModelInstance> {
    const manifest = await readManifest(join(this.options.modelsDir, entry.name));
    entry.manifest = manifest;
    const session = await ModelSession.load(manifest.onnxPath);
    try {
      const tokenizer = manifest.tokenizerPath ? await TextTokenizer.load(manifest.tokenizerPath, manifest.tokenizerConfigPath) : null;
      const instance = new ModelInstance(manifest, session, tokenizer);
      this.options.validate?.(instance);
      await this.options.warmUp?.(instance);
      return instance;
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  private async exclusive<T>(name: string, fn: (entry: ModelEntry) => Promise<T>): Promise<T> {
    if (!this.entries.has(name)) await this.scan();
    const entry = this.entries.get(name);
    if (!entry) throw inferqlError('MODEL_NOT_FOUND', `No model folder named "${name}".`, { model: name });
    const previous = this.locks.get(name) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => fn(entry));
    this.locks.set(name, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(name) === next) this.locks.delete(name);
    }
  }

  private transition(entry: ModelEntry, status: ModelStatus, kind: ModelEventKind, message: string | null = null): void {
    entry.status = status;
    this.emit(entry, kind, message);
  }

  private emit(entry: ModelEntry, kind: ModelEventKind, message: string | null = null): void {
    this.options.onEvent?.({ model: entry.name, kind, status: entry.status, message, at: new Date() });
  }
}
