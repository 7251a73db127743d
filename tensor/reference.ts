import type { Device, HostArray, MemoryStats, Storage, StorageWriter } from "./device.ts";
import {
  bf16BitsToF32,
  byteSize,
  type DType,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from "./dtype.ts";
import { type Meta, type OpDef, type RefArray, type RefInput, withF64 } from "./op.ts";
import type { Tensor } from "./tensor.ts";

/** Reference storage: f32 (or f64) / i32 values, or raw 16-bit patterns for bf16/f16. */
class RefStorage implements Storage {
  refs = 0;
  #upcast: Float32Array | null = null;
  constructor(readonly values: HostArray, readonly dtype: DType) {}
  get bytes(): number {
    return this.values.length * byteSize(this.dtype);
  }
  /** The values as f32/f64/i32, bf16/f16 upcast once and cached. */
  compute(): RefArray {
    const v = this.values;
    if (!(v instanceof Uint16Array)) return v;
    if (this.#upcast === null) {
      const up = this.dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32;
      this.#upcast = Float32Array.from(v, up);
    }
    return this.#upcast;
  }
}

/**
 * The reference backend: plain TypeScript loops with f64 accumulation. It is the executable
 * specification and the fallback when no WebGPU adapter exists. The `f64` variant keeps f32
 * tensors in double precision end to end, for finite-difference checks of VJP rules.
 */
class ReferenceDevice implements Device {
  readonly kind = "reference" as const;
  #live = new Set<RefStorage>();

  constructor(readonly name: string, readonly f64: boolean) {}

  upload(values: HostArray, dtype: DType): Storage {
    const s = new RefStorage(this.#toStored(values, dtype), dtype);
    this.#live.add(s);
    return s;
  }

  uploadPieces(n: number, dtype: DType): StorageWriter {
    const half = dtype === "bf16" || dtype === "f16";
    const all = new Uint8Array(n * (half ? 2 : 4));
    let at = 0;
    return {
      pieceBytes: 4,
      write: (bytes) => {
        all.set(bytes, at);
        at += bytes.length;
      },
      done: () => {
        if (at !== all.length) {
          throw new Error(`uploadPieces: ${at} of ${all.length} bytes written`);
        }
        const b = all.buffer;
        const values = half
          ? new Uint16Array(b)
          : dtype === "i32"
          ? new Int32Array(b)
          : new Float32Array(b);
        return this.upload(values, dtype);
      },
    };
  }

  read(
    storage: Storage,
    _dtype: DType,
    _size: number,
  ): Promise<Float32Array | Float64Array | Int32Array> {
    const v = (storage as RefStorage).compute();
    return Promise.resolve(v.slice());
  }

  run(def: OpDef, inputs: readonly Tensor[], attrs: unknown, outs: readonly Meta[]): Storage[] {
    const refInputs: RefInput[] = inputs.map((t) => ({
      shape: t.shape,
      dtype: t.dtype,
      values: (t.storage as RefStorage).compute(),
    }));
    const results = this.f64
      ? withF64(() => def.reference(refInputs, attrs, outs))
      : def.reference(refInputs, attrs, outs);
    return results.map((values, i) => this.upload(values, outs[i]!.dtype));
  }

  release(storage: Storage): void {
    this.#live.delete(storage as RefStorage);
  }

  stats(): MemoryStats {
    let liveBytes = 0;
    for (const s of this.#live) liveBytes += s.bytes;
    return { liveBytes, liveCount: this.#live.size, pooledBytes: 0 };
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  /** Convert host values to the stored representation of `dtype`. */
  #toStored(values: HostArray, dtype: DType): HostArray {
    switch (dtype) {
      case "f32":
        if (this.f64) return values instanceof Float64Array ? values : Float64Array.from(values);
        return values instanceof Float32Array ? values : Float32Array.from(values);
      case "i32":
        return values instanceof Int32Array ? values : Int32Array.from(values, Math.trunc);
      case "bf16":
      case "f16": {
        if (values instanceof Uint16Array) return values;
        const round = dtype === "bf16" ? f32ToBf16Bits : f32ToF16Bits;
        return Uint16Array.from(values, round);
      }
      default:
        return dtype satisfies never;
    }
  }
}

/** The reference device (f32 storage, f64 accumulation). */
export const referenceDevice: Device = new ReferenceDevice("reference", false);

/** The reference in double precision throughout, for finite-difference checks. */
export const reference64Device: Device = new ReferenceDevice("reference-f64", true);
