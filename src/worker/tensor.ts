/**
 * Tensors on the TypeScript side of the wire: a dtype, a shape and the C-contiguous
 * little-endian bytes, exactly as they travel (one raw ZeroMQ frame per tensor). Typed views
 * share the bytes when their address allows it, and copy otherwise.
 */
import { TaggantsError } from "../errors.ts";

export const DTYPES = [
  "uint8",
  "int8",
  "int16",
  "int32",
  "int64",
  "float16",
  "bfloat16",
  "float32",
  "float64",
  "bool",
] as const;
export type DType = (typeof DTYPES)[number];

export const ITEM_SIZE: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  bfloat16: 2,
  float32: 4,
  float64: 8,
  bool: 1,
};

/**
 * The typed array that views each dtype. float16 and bfloat16 have no JavaScript number type
 * on Node 20: they are viewed as their raw 16-bit patterns (Uint16Array); bool as 0/1 bytes.
 */
export interface TypedArrayFor {
  uint8: Uint8Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  float32: Float32Array;
  float64: Float64Array;
  bool: Uint8Array;
}

type TypedArrayConstructor<T> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  new (length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

const VIEW: { [D in DType]: TypedArrayConstructor<TypedArrayFor[D]> } = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  float32: Float32Array,
  float64: Float64Array,
  bool: Uint8Array,
};

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && (DTYPES as readonly string[]).includes(value);
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((count, size) => count * size, 1);
}

export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  /**
   * The tensor's bytes, C-contiguous and little-endian. Often a view into a larger buffer (a
   * received ZeroMQ frame, Node's Buffer pool): use `values()`, or mind `byteOffset`.
   */
  readonly data: Uint8Array;

  constructor(dtype: D, shape: readonly number[], data: Uint8Array) {
    if (!isDType(dtype)) {
      throw new TaggantsError(
        "tensor_invalid",
        `Unknown tensor dtype ${JSON.stringify(dtype)}; expected one of ${DTYPES.join(", ")}.`,
      );
    }
    if (!shape.every((size) => Number.isSafeInteger(size) && size >= 0)) {
      throw new TaggantsError(
        "tensor_invalid",
        `A tensor shape must be a list of sizes >= 0, got [${shape.join(", ")}].`,
      );
    }
    const expected = elementCount(shape) * ITEM_SIZE[dtype];
    if (data.byteLength !== expected) {
      throw new TaggantsError(
        "tensor_invalid",
        `A ${dtype} tensor of shape [${shape.join(", ")}] needs ${expected} bytes, got ${data.byteLength}.`,
      );
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
  }

  /** A tensor over the memory of `values` (no copy); the shape defaults to 1-D. */
  static from<D extends DType>(
    dtype: D,
    values: TypedArrayFor[D],
    shape: readonly number[] = [values.length],
  ): Tensor<D> {
    if (values.BYTES_PER_ELEMENT !== ITEM_SIZE[dtype]) {
      throw new TaggantsError(
        "tensor_invalid",
        `A ${dtype} tensor needs ${ITEM_SIZE[dtype]}-byte elements, got a ${values.constructor.name}.`,
      );
    }
    return new Tensor(
      dtype,
      shape,
      new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    );
  }

  /** A zero-filled tensor. */
  static zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    return new Tensor(dtype, shape, new Uint8Array(elementCount(shape) * ITEM_SIZE[dtype]));
  }

  get size(): number {
    return elementCount(this.shape);
  }

  /**
   * The elements as a typed array (float16/bfloat16 as raw bit patterns). Shares the bytes
   * when their offset is a multiple of the element size, copies them otherwise.
   */
  values(): TypedArrayFor[D] {
    const View = VIEW[this.dtype];
    const itemSize = View.BYTES_PER_ELEMENT;
    const { buffer, byteOffset } = this.data;
    if (byteOffset % itemSize === 0) return new View(buffer, byteOffset, this.size);
    const aligned = new Uint8Array(this.data.byteLength);
    aligned.set(this.data);
    return new View(aligned.buffer, 0, this.size);
  }
}
