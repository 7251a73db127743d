import type { Device, Storage } from "./device.ts";
import type { DType } from "./dtype.ts";
import { registerInScope } from "./scope.ts";

/**
 * An immutable n-dimensional array on a device. Operations return new tensors; reading the
 * values back is explicit and async (`await t.data()`).
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  #storage: Storage | null;

  /** Wrap a storage. Ops and creation functions call this; users do not. */
  constructor(shape: readonly number[], dtype: DType, device: Device, storage: Storage) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = device;
    this.#storage = storage;
    storage.refs++;
    registerInScope(this);
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** The device storage; throws if the tensor was disposed. */
  get storage(): Storage {
    if (this.#storage === null) {
      throw new Error(`tensor ${fmtShape(this.shape)} ${this.dtype} was used after dispose`);
    }
    return this.#storage;
  }

  /** False once disposed. */
  get alive(): boolean {
    return this.#storage !== null;
  }

  /**
   * The values, row-major: Float32Array for floats (bf16/f16 upcast; Float64Array on the f64
   * reference), Int32Array for i32.
   */
  data(): Promise<Float32Array | Float64Array | Int32Array> {
    return this.device.read(this.storage, this.dtype, this.size);
  }

  /** The values as a plain number array. */
  async array(): Promise<number[]> {
    return Array.from(await this.data());
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor has ${this.size} elements, not 1`);
    return (await this.data())[0]!;
  }

  /** Release this tensor's hold on its storage now (idempotent). */
  dispose(): void {
    const s = this.#storage;
    if (s === null) return;
    this.#storage = null;
    if (--s.refs === 0) this.device.release(s);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** `Tensor([2, 3] f32 on reference)`. */
  toString(): string {
    return `Tensor(${fmtShape(this.shape)} ${this.dtype} on ${this.device.name}${
      this.alive ? "" : ", disposed"
    })`;
  }
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** `[2,3]`, as error messages print shapes. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}
