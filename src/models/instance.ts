import type { ModelSession } from '../runtime/session.js';
import type { ModelManifest } from './manifest.js';
import type { TextTokenizer } from './tokenizer.js';

/** Something a service hangs on a loaded model (a batcher, a decode scheduler), freed with it. */
export interface Extension<T> {
  value: T;
  /** Lets in-flight work finish, then frees what the extension holds. */
  dispose(): Promise<void>;
}

/**
 * One loaded version of a model: its session, tokenizer and the per-model
 * machinery services attach to it. A reload makes a new instance; the old one
 * drains and is disposed.
 */
export class ModelInstance {
  readonly loadedAt = new Date();
  private readonly extensions = new Map<symbol, Extension<unknown>>();
  private disposed = false;

  constructor(
    readonly manifest: ModelManifest,
    readonly session: ModelSession,
    readonly tokenizer: TextTokenizer | null,
  ) {}

  get name(): string {
    return this.manifest.name;
  }

  /** The extension stored under `key`, made on first use. */
  extension<T>(key: symbol, create: (instance: ModelInstance) => Extension<T>): T {
    if (this.disposed) throw new Error(`model instance ${this.name} was disposed`);
    let ext = this.extensions.get(key) as Extension<T> | undefined;
    if (!ext) {
      ext = create(this);
      this.extensions.set(key, ext);
    }
    return ext.value;
  }

  peekExtension<T>(key: symbol): T | undefined {
    return (this.extensions.get(key) as Extension<T> | undefined)?.value;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.allSettled([...this.extensions.values()].map((e) => e.dispose()));
    this.extensions.clear();
    await this.session.release();
  }
}
