import ort from 'onnxruntime-node';
import { inferqlError } from '../errors.js';
import { DATATYPE_INFO, type Datatype, datatypeFromOrt, floatToHalf, halfToFloat, typedArrayFor } from './dtypes.js';

/** A tensor as it crosses the API: KServe v2 fields, flat row-major data or little-endian base64 bytes. */
export interface TensorPayload {
  name: string;
  datatype: Datatype;
  shape: readonly number[];
  data?: readonly number[] | null;
  base64?: string | null;
}

export interface NamedTensor {
  name: string;
  tensor: ort.Tensor;
}

const badTensor = (name: string, message: string) => inferqlError('BAD_TENSOR', `Input "${name}": ${message}`, { input: name });

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** Checks and converts one API tensor into an onnxruntime tensor. Every failure is BAD_TENSOR. */
export function decodeTensor(payload: TensorPayload, maxElements: number): NamedTensor {
  const { name, datatype, shape } = payload;
  const info = DATATYPE_INFO[datatype];
  if (!info) throw badTensor(name, `unsupported datatype ${String(datatype)}`);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw badTensor(name, `shape [${shape.join(', ')}] must hold non-negative integers`);
  const count = elementCount(shape);
  if (count > maxElements) throw badTensor(name, `${count} elements exceed the limit of ${maxElements}`);
  const hasData = payload.data !== undefined && payload.data !== null;
  const hasBase64 = payload.base64 !== undefined && payload.base64 !== null;
  if (hasData === hasBase64) throw badTensor(name, 'give exactly one of data or base64');

  let values: ort.Tensor.DataType;
  if (hasBase64) {
    const bytes = Buffer.from(payload.base64!, 'base64');
    if (bytes.length !== count * info.bytes) {
      throw badTensor(name, `base64 holds ${bytes.length} bytes, shape [${shape.join(', ')}] of ${datatype} needs ${count * info.bytes}`);
    }
    values = typedArrayFor(datatype, count);
    new Uint8Array((values as Uint8Array).buffer).set(bytes);
    checkDecoded(name, datatype, values);
  } else {
    const data = payload.data!;
    if (data.length !== count) throw badTensor(name, `data has ${data.length} elements, shape [${shape.join(', ')}] needs ${count}`);
    values = fromNumbers(name, datatype, data);
  }
  const tensor = new ort.Tensor(info.ort as 'float32', values as Float32Array, [...shape]);
  return { name, tensor };
}

function fromNumbers(name: string, datatype: Datatype, data: readonly number[]): ort.Tensor.DataType {
  const info = DATATYPE_INFO[datatype];
  const out = typedArrayFor(datatype, data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) throw badTensor(name, `element ${i} is not a finite number`);
    if (info.integer) {
      if (!Number.isInteger(v)) throw badTensor(name, `element ${i} (${v}) is not an integer, as ${datatype} needs`);
      if (v < info.min! || v > info.max!) throw badTensor(name, `element ${i} (${v}) is outside the ${datatype} range`);
    }
    if (out instanceof BigInt64Array || out instanceof BigUint64Array) out[i] = BigInt(v);
    else if (datatype === 'FP16') out[i] = floatToHalf(v);
    else (out as Float32Array)[i] = v;
  }
  return out;
}

function checkDecoded(name: string, datatype: Datatype, values: ort.Tensor.DataType): void {
  if (datatype === 'BOOL') {
    const i = (values as Uint8Array).findIndex((v) => v > 1);
    if (i >= 0) throw badTensor(name, `element ${i} is not a boolean (0 or 1)`);
  } else if (datatype === 'FP32' || datatype === 'FP64') {
    const i = (values as Float32Array).findIndex((v) => !Number.isFinite(v));
    if (i >= 0) throw badTensor(name, `element ${i} is not a finite number`);
  } else if (datatype === 'FP16') {
    const i = (values as Uint16Array).findIndex((v) => (v & 0x7c00) === 0x7c00);
    if (i >= 0) throw badTensor(name, `element ${i} is not a finite number`);
  }
}

export function datatypeOf(tensor: ort.Tensor): Datatype {
  const datatype = datatypeFromOrt(tensor.type);
  if (!datatype) throw new Error(`unsupported output tensor type ${tensor.type}`);
  return datatype;
}

/** Flat row-major numbers (64-bit integers beyond 2^53 lose precision: use base64 for those). */
export function tensorToNumbers(tensor: ort.Tensor): number[] {
  const data = tensor.data as ArrayLike<number | bigint>;
  const out = new Array<number>(data.length);
  if (tensor.type === 'float16') {
    const bits = new Uint16Array((data as Uint16Array).buffer, (data as Uint16Array).byteOffset, data.length);
    for (let i = 0; i < data.length; i++) out[i] = halfToFloat(bits[i]!);
  } else {
    for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  }
  return out;
}

/** The tensor's bytes, little-endian as the platform holds them, base64-encoded. */
export function tensorToBase64(tensor: ort.Tensor): string {
  const data = tensor.data as Uint8Array;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}
