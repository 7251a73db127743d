import type { DType } from "./dtype.ts";
import type { Meta, OpDef } from "./op.ts";
import type { Tensor } from "./tensor.ts";

/** Host-side element arrays: f32/i32 values (f64 on the f64 reference), or raw 16-bit patterns for bf16/f16. */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint16Array;

/** A device allocation shared by every tensor that views it (reshape shares storage). */
export interface Storage {
  /** Bytes held on the device. */
  readonly bytes: number;
  /** How many live tensors use this storage; the device frees it at 0. */
  refs: number;
}

/** Live and pooled device memory. */
export interface MemoryStats {
  /** Bytes held by storages some tensor still uses. */
  liveBytes: number;
  /** Number of such storages. */
  liveCount: number;
  /** Bytes kept by the pool for reuse. */
  pooledBytes: number;
}

/** Fills a new storage piece by piece (`Device.uploadPieces`). */
export interface StorageWriter {
  /** Every piece but the last must be a multiple of this many bytes. */
  readonly pieceBytes: number;
  /** Write the next piece; the caller may reuse `bytes` as soon as this returns. */
  write(bytes: Uint8Array<ArrayBuffer>): void;
  /** The storage, once every byte was written. */
  done(): Storage;
}

/** A backend: where tensors live and how ops run there. */
export interface Device {
  /** `reference`, `webgpu:texture` or `webgpu:buffer`. */
  readonly name: string;
  readonly kind: "reference" | "webgpu";
  /** Copy host values to a new storage. For bf16/f16, `values` is f32 (rounded here) or raw bits. */
  upload(values: HostArray, dtype: DType): Storage;
  /**
   * A new storage of `n` elements written from raw little-endian bytes (bf16/f16 bits, f32,
   * i32) in consecutive pieces, so a large tensor goes from a file to the device through one
   * small reused window instead of a host copy of the whole.
   */
  uploadPieces(n: number, dtype: DType): StorageWriter;
  /** Read a storage back, upcast to f32 (floats) or i32. */
  read(
    storage: Storage,
    dtype: DType,
    size: number,
  ): Promise<Float32Array | Float64Array | Int32Array>;
  /** Run an op on tensors of this device, returning the output storages. */
  run(def: OpDef, inputs: readonly Tensor[], attrs: unknown, outs: readonly Meta[]): Storage[];
  /** Give a storage back (called when its last tensor is disposed). */
  release(storage: Storage): void;
  /** Live and pooled memory. */
  stats(): MemoryStats;
  /** Wait until all queued work is done. */
  sync(): Promise<void>;
  /**
   * Optional hint that `t` is a Linear weight (used as `x · tᵀ`): a device may re-lay it out
   * for its matmul kernel and keep only that form (values and results are unchanged).
   */
  prepareLinearWeight?(t: Tensor): void;
}
