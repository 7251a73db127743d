/**
 * Element types. `f32` and `i32` are compute types; `bf16` and `f16` are storage types:
 * kernels upcast them on load and compute in f32 (DESIGN 2.3), so an op over bf16 weights
 * returns f32.
 */
export type DType = "f32" | "bf16" | "f16" | "i32";

export const dtypes: readonly DType[] = ["f32", "bf16", "f16", "i32"];

/** Bytes per element as stored. */
export function byteSize(dtype: DType): number {
  switch (dtype) {
    case "f32":
    case "i32":
      return 4;
    case "bf16":
    case "f16":
      return 2;
    default:
      return dtype satisfies never;
  }
}

/** True for the floating dtypes (f32, bf16, f16). */
export function isFloat(dtype: DType): boolean {
  return dtype !== "i32";
}

/** The dtype an op computes in for this input: i32 stays i32, every float becomes f32. */
export function computeType(dtype: DType): "f32" | "i32" {
  return dtype === "i32" ? "i32" : "f32";
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Round an f32 value to bf16 bits (round to nearest even; NaN stays NaN). */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The f32 value of bf16 bits. */
export function bf16BitsToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** Round an f32 value to IEEE half bits (round to nearest even). */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++;
  e = half >>> 10;
  return sign | half;
}

/** The f32 value of IEEE half bits. */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
