import type { Tensor } from 'onnxruntime-node';

/** Tensor datatypes of the Open Inference Protocol (KServe v2) that inferql carries. */
export const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64'] as const;
export type Datatype = (typeof DATATYPES)[number];

type NumericOrtType = Exclude<Tensor.Type, 'string' | 'int4' | 'uint4' | 'float16'> | 'float16';

interface DatatypeInfo {
  ort: NumericOrtType;
  bytes: number;
  /** Whether values must be whole numbers. */
  integer: boolean;
  min?: number;
  max?: number;
}

export const DATATYPE_INFO: Record<Datatype, DatatypeInfo> = {
  BOOL: { ort: 'bool', bytes: 1, integer: true, min: 0, max: 1 },
  UINT8: { ort: 'uint8', bytes: 1, integer: true, min: 0, max: 255 },
  UINT16: { ort: 'uint16', bytes: 2, integer: true, min: 0, max: 65_535 },
  UINT32: { ort: 'uint32', bytes: 4, integer: true, min: 0, max: 4_294_967_295 },
  UINT64: { ort: 'uint64', bytes: 8, integer: true, min: 0, max: Number.MAX_SAFE_INTEGER },
  INT8: { ort: 'int8', bytes: 1, integer: true, min: -128, max: 127 },
  INT16: { ort: 'int16', bytes: 2, integer: true, min: -32_768, max: 32_767 },
  INT32: { ort: 'int32', bytes: 4, integer: true, min: -2_147_483_648, max: 2_147_483_647 },
  INT64: { ort: 'int64', bytes: 8, integer: true, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER },
  FP16: { ort: 'float16', bytes: 2, integer: false },
  FP32: { ort: 'float32', bytes: 4, integer: false },
  FP64: { ort: 'float64', bytes: 8, integer: false },
};

const FROM_ORT = new Map<string, Datatype>(DATATYPES.map((d) => [DATATYPE_INFO[d].ort, d]));

export function datatypeFromOrt(type: string): Datatype | undefined {
  return FROM_ORT.get(type);
}

/** The typed-array class onnxruntime expects for each datatype. */
export function typedArrayFor(datatype: Datatype, length: number): Tensor.DataType {
  switch (datatype) {
    case 'BOOL':
    case 'UINT8':
      return new Uint8Array(length);
    case 'INT8':
      return new Int8Array(length);
    case 'UINT16':
    case 'FP16':
      return new Uint16Array(length);
    case 'INT16':
      return new Int16Array(length);
    case 'UINT32':
      return new Uint32Array(length);
    case 'INT32':
      return new Int32Array(length);
    case 'UINT64':
      return new BigUint64Array(length);
    case 'INT64':
      return new BigInt64Array(length);
    case 'FP32':
      return new Float32Array(length);
    case 'FP64':
      return new Float64Array(length);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary32 → binary16 bits, rounding to nearest even. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** binary16 bits → number. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
