// Inverted dropout (PyTorch's `nn.Dropout`) with a counter-based mask: whether element i is
// kept is a pure function of (seed, i), a 32-bit integer hash computed the same way in
// TypeScript (Math.imul, >>> 0) and in WGSL (u32), so both backends draw the same mask and
// the VJP redraws it from the attributes instead of keeping a mask tensor.
import { isFloat } from "../dtype.ts";
import { apply1, fail, floats, type OpDef } from "../op.ts";
import { fmtShape, type Tensor } from "../tensor.ts";

/** Attributes of `dropout`: the drop probability and the u32 seed of the mask. */
export interface DropoutAttrs {
  readonly p: number;
  readonly seed: number;
}

/** Chris Wellons' `lowbias32` integer finalizer (a bijection on u32 with strong avalanche). */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * The hash deciding element i: mix(mix(i ⊕ mix(seed ⊕ φ)) + seed). The seed enters twice,
 * before and after the index is mixed, so two seeds' masks are not shifts or permutations
 * of each other (as they are for any hash of the form f(g(seed) ⊕ i)).
 */
export function dropoutHash(seed: number, i: number): number {
  const key = mix32((seed ^ 0x9e3779b9) >>> 0);
  return mix32((mix32((i ^ key) >>> 0) + seed) >>> 0);
}

/** The same hash in WGSL (`dropout_hash(seed, i)`), spliced into the WebGPU kernel. */
export const dropoutHashWgsl = `
fn mix32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u; x *= 0x7feb352du; x ^= x >> 15u; x *= 0x846ca68bu; x ^= x >> 16u;
  return x;
}
fn dropout_hash(seed: u32, i: u32) -> u32 {
  let key = mix32(seed ^ 0x9e3779b9u);
  return mix32(mix32(i ^ key) + seed);
}`;

/**
 * Element i is kept iff `hash >>> 8 < keepThreshold(p)`: the top 24 bits of the hash as a
 * uniform integer in [0, 2²⁴), so P(keep) = round((1 − p)·2²⁴)/2²⁴ (exact to 6e-8).
 */
export function keepThreshold(p: number): number {
  return Math.round((1 - p) * 2 ** 24);
}

/** The scale of kept values, 1/(1 − p) rounded to f32 (both backends multiply by this f32). */
export function keepScale(p: number): number {
  return Math.fround(1 / (1 - p));
}

/**
 * dropout(x) [same shape, f32]: x[i]/(1 − p) where element i is kept, else 0. Linear in x
 * with a fixed mask, so its VJP is dropout of the cotangent with the same (p, seed).
 */
export const dropoutOp: OpDef<DropoutAttrs> = {
  name: "dropout",
  infer([x], { p, seed }) {
    if (!isFloat(x!.dtype)) {
      fail("dropout", `needs a float tensor, got ${x!.dtype} ${fmtShape(x!.shape)}`);
    }
    if (!(p >= 0 && p < 1)) fail("dropout", `p must be in [0, 1), got ${p}`);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      fail("dropout", `seed must be an integer in [0, 2³²), got ${seed}`);
    }
    return [{ shape: x!.shape, dtype: "f32" }];
  },
  reference([x], { p, seed }) {
    const v = x!.values, out = floats(v.length);
    const threshold = keepThreshold(p), scale = keepScale(p);
    for (let i = 0; i < v.length; i++) {
      out[i] = dropoutHash(seed, i) >>> 8 < threshold ? v[i]! * scale : 0;
    }
    return [out];
  },
  webgpu: (gpu, [x], { p, seed }, [out]) => [
    gpu.dropout(x!, seed, keepThreshold(p), keepScale(p), out!),
  ],
  vjp: ([g], { attrs }) => [g && apply1(dropoutOp, [g], attrs)],
};

/**
 * Inverted dropout: zero each element with probability p and scale the rest by 1/(1 − p);
 * the mask is a pure function of (seed, flat index), so each call site and step needs its
 * own seed (e.g. `foldIn`). p = 0 returns x itself.
 * @example
 * const h = dropout(x, 0.05, foldIn(runSeed, step)); // a new mask every step
 */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (p === 0) return x;
  return apply1(dropoutOp, [x], { p, seed });
}
