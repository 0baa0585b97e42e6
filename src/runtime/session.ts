import ort from 'onnxruntime-node';
import { type Datatype, datatypeFromOrt } from './dtypes.js';

/** One input or output of a model: a dynamic dimension is `null` in `shape`, its symbolic name in `dimNames`. */
export interface TensorSpec {
  name: string;
  datatype: Datatype;
  shape: (number | null)[];
  dimNames: (string | null)[];
}

export type Feeds = Record<string, ort.Tensor>;
export type Fetches = Record<string, ort.Tensor>;

export interface SessionOptions {
  intraOpThreads?: number;
}

function specOf(meta: ort.InferenceSession.ValueMetadata): TensorSpec {
  if (!meta.isTensor) throw new Error(`"${meta.name}" is not a tensor; only tensor inputs and outputs are supported`);
  const datatype = datatypeFromOrt(meta.type);
  if (!datatype) throw new Error(`"${meta.name}" has unsupported type ${meta.type}`);
  return {
    name: meta.name,
    datatype,
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : null)),
    dimNames: meta.shape.map((d) => (typeof d === 'string' ? d : null)),
  };
}

/**
 * An onnxruntime-node session with its I/O described as TensorSpecs. It knows
 * nothing of GraphQL or batching; it counts its runs so tests and metrics can
 * see how many times the model really ran.
 */
export class ModelSession {
  runs = 0;
  private released = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputs: TensorSpec[],
    readonly outputs: TensorSpec[],
  ) {}

  static async load(path: string, options: SessionOptions = {}): Promise<ModelSession> {
    const session = await ort.InferenceSession.create(path, {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    });
    return new ModelSession(session, session.inputMetadata.map(specOf), session.outputMetadata.map(specOf));
  }

  input(name: string): TensorSpec | undefined {
    return this.inputs.find((s) => s.name === name);
  }

  async run(feeds: Feeds, outputNames?: readonly string[]): Promise<Fetches> {
    if (this.released) throw new Error('session was released');
    this.runs++;
    return outputNames ? this.session.run(feeds, outputNames) : this.session.run(feeds);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
