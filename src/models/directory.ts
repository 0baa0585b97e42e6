import { hostname } from 'node:os';
import type { TensorSpec } from '../runtime/session.js';
import type { ModelEntry, ModelRegistry, ModelStatus } from './registry.js';
import type { ModelManifest } from './manifest.js';

/** This process's name among workers: host and pid. */
export const PROCESS_ID = `${hostname()}:${process.pid}`;

/**
 * A model as the API shows it: plain data, so a worker can publish it and an
 * API process that loads no model can serve it.
 */
export interface ModelView {
  name: string;
  version: string | null;
  task: ModelManifest['task'] | null;
  status: ModelStatus;
  error: string | null;
  loadedAt: Date | string | null;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  labels: string[] | null;
  /** The processes that serve it now (status READY). */
  workers: string[];
}

/** The models the API can reach: this process's registry, or the union of the live workers'. */
export interface ModelDirectory {
  list(): Promise<ModelView[]>;
  get(name: string): Promise<ModelView | null>;
  load(name: string): Promise<ModelView>;
  unload(name: string): Promise<ModelView>;
  reload(name: string): Promise<ModelView>;
}

export function viewOf(entry: ModelEntry, worker = PROCESS_ID): ModelView {
  return {
    name: entry.name,
    version: entry.manifest?.version ?? null,
    task: entry.manifest?.task ?? null,
    status: entry.status,
    error: entry.error,
    loadedAt: entry.instance?.loadedAt ?? null,
    inputs: entry.instance?.session.inputs ?? [],
    outputs: entry.instance?.session.outputs ?? [],
    labels: entry.manifest?.labels ?? null,
    workers: entry.status === 'READY' ? [worker] : [],
  };
}

export class LocalModelDirectory implements ModelDirectory {
  constructor(private readonly registry: ModelRegistry) {}

  async list(): Promise<ModelView[]> {
    return this.registry.list().map((e) => viewOf(e));
  }

  async get(name: string): Promise<ModelView | null> {
    const entry = this.registry.get(name);
    return entry ? viewOf(entry) : null;
  }

  async load(name: string): Promise<ModelView> {
    return viewOf(await this.registry.load(name));
  }

  async unload(name: string): Promise<ModelView> {
    return viewOf(await this.registry.unload(name));
  }

  async reload(name: string): Promise<ModelView> {
    return viewOf(await this.registry.reload(name));
  }
}
