// Fused attention on WebGPU, forward (optionally with the DP statistics) and backward
// (DESIGN 2.4): flash-style kernels over
// blocks of 4 keys (attention_forward.ts, attention_backward.ts) with the mask compiled in
// (attention_mask.ts). This file shapes the calls: the kernels read and write whole texels,
// so a head dimension that is not a multiple of 4 is zero-padded around the call, and a
// per-row output (lse, Δ) is written with rows rounded up to 4 and sliced after.
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import { type AttentionAttrs, attentionDims } from "../../ops/attention.ts";
import { stridesOf } from "../../shape.ts";
import type { WebGpuDevice } from "../device.ts";
import { f32Word } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { dkdvWgsl, dqWgsl } from "./attention_backward.ts";
import { forwardWgsl } from "./attention_forward.ts";
import { allowedWgsl, rowReader } from "./attention_mask.ts";
import { copy } from "./elementwise.ts";

/** Sizes of a call (see `attentionDims`). */
interface CallDims {
  readonly b: number;
  readonly h: number;
  readonly l: number;
  readonly d: number;
  readonly s: number;
  readonly group: number;
}

/** Sizes shared by the kernels, and their uniform words. */
export function plan<Dims extends CallDims>(
  dims: Dims,
  attrs: Pick<AttentionAttrs, "queryOffset" | "scale" | "hasKeyValid">,
) {
  const d4 = Math.ceil(dims.d / 4);
  const lp = Math.ceil(dims.l / 4) * 4;
  // registers per row (texels): 16 up to D = 64, else a power of two, so that a few
  // pipelines serve every head size (each costs seconds to compile cold, DESIGN 5.1); the
  // common sizes (D = 64, 128) also get the row length baked in, which runs ~20 % faster
  const dc = Math.max(16, 2 ** Math.ceil(Math.log2(d4)));
  const words = [
    dims.h,
    dims.l,
    dims.s,
    dims.group,
    d4,
    attrs.queryOffset >>> 0,
    f32Word(attrs.scale),
    lp,
    attrs.hasKeyValid ? 1 : 0,
  ];
  return { ...dims, d4, lp, dc, d4Const: d4 === dc ? d4 : null, words };
}

/** `x` copied into `shape` (each axis cut or zero-padded at its end), as f32. */
function resized(dev: WebGpuDevice, x: GpuTensor, shape: readonly number[]): GpuTensor {
  const storage = copy(dev, x, { shape, dtype: "f32" }, {
    stride: stridesOf(x.shape),
    shift: shape.map(() => 0),
    limit: x.shape,
  });
  return { storage, shape, dtype: "f32" };
}

/** Uniform word saying whether keyValid is bound (see `keyLiveWgsl`). */
export const hasPadWord = 8;

/** keyValid and the token arrays; a 1-element placeholder (never read) stands for no keyValid. */
export function maskInputs(
  dev: WebGpuDevice,
  extra: readonly GpuTensor[],
  attrs: Pick<AttentionAttrs, "hasKeyValid">,
) {
  if (attrs.hasKeyValid) return { tensors: extra, placeholder: null };
  const placeholder = dev.alloc(1, "i32");
  const none: GpuTensor = { storage: placeholder, shape: [1], dtype: "i32" };
  return { tensors: [none, ...extra], placeholder };
}

/** Tensors with the last axis padded to 4·d4 (the inputs themselves when it already is). */
export function padHeads(dev: WebGpuDevice, xs: readonly GpuTensor[], d4: number) {
  return xs.map((x) => {
    if (x.shape[3] === d4 * 4) return { t: x, temp: false };
    return { t: resized(dev, x, [...x.shape.slice(0, 3), d4 * 4]), temp: true };
  });
}

/** Output storage of shape `shape`, or a temp of `inner` shape to be resized into it. */
function outputOf(dev: WebGpuDevice, meta: Meta, inner: readonly number[]) {
  const direct = inner.every((n, i) => n === meta.shape[i]);
  const t: GpuTensor = {
    storage: dev.allocFor({ shape: inner, dtype: "f32" }),
    shape: inner,
    dtype: "f32",
  };
  return {
    t,
    /** The output in `meta`'s shape (frees the temp). */
    finish(): Storage {
      if (direct) return t.storage;
      const s = resized(dev, t, meta.shape).storage;
      dev.release(t.storage);
      return s;
    },
  };
}

/** Forward: [out, lse] (+ DP statistics with `attrs.dpStats`) from q, k, v, [keyValid], [tokens…]. */
export function attention(
  dev: WebGpuDevice,
  inputs: readonly GpuTensor[],
  attrs: AttentionAttrs,
  outs: readonly Meta[],
): Storage[] {
  const p = plan(attentionDims(inputs, attrs), attrs);
  const stats = attrs.dpStats ?? false;
  const [q, k, v] = padHeads(dev, inputs.slice(0, 3), p.d4);
  const out = outputOf(dev, outs[0]!, [p.b, p.h, p.l, p.d4 * 4]);
  const lse = outputOf(dev, outs[1]!, [p.b, p.h, p.lp]);
  const statsOut = stats ? [dev.allocFor(outs[2]!)] : [];
  const mask = maskInputs(dev, inputs.slice(3), attrs);
  if (p.l > 0 && p.b * p.h > 0) {
    const helpers = allowedWgsl(attrs, 3, hasPadWord) +
      rowReader("q", "x0", q!.t.dtype, dev.strategy) +
      rowReader("k", "x1", k!.t.dtype, dev.strategy) +
      rowReader("v", "x2", v!.t.dtype, dev.strategy);
    dev.dispatch({
      code: forwardWgsl(helpers, p.dc, p.d4Const, { attention: true, stats }),
      inputs: [q!.t, k!.t, v!.t, ...mask.tensors].map((tensor, i) => ({
        name: `x${i}`,
        tensor,
      })),
      outputs: [
        { name: "out", storage: out.t.storage },
        { name: "lse", storage: lse.t.storage },
        ...statsOut.map((storage) => ({ name: "stats", storage })),
      ],
      uniforms: p.words,
      workgroups: [Math.ceil(p.l / 32), p.b * p.h],
    });
  }
  for (const x of [q, k, v]) if (x!.temp) dev.release(x!.t.storage);
  if (mask.placeholder) dev.release(mask.placeholder);
  return [out.finish(), lse.finish(), ...statsOut];
}

/** Backward: [dq, dk, dv] from q, k, v, out, lse, dOut, [keyValid], [tokens…]. */
export function attentionBackward(
  dev: WebGpuDevice,
  inputs: readonly GpuTensor[],
  attrs: AttentionAttrs,
  outs: readonly Meta[],
): Storage[] {
  const [, , , , lseIn, , ...extra] = inputs;
  const p = plan(attentionDims([inputs[0]!, inputs[1]!, inputs[2]!, ...extra], attrs), attrs);
  const [q, k, v, o, g] = padHeads(dev, [0, 1, 2, 3, 5].map((i) => inputs[i]!), p.d4);
  const dq = outputOf(dev, outs[0]!, [p.b, p.h, p.l, p.d4 * 4]);
  const dk = outputOf(dev, outs[1]!, [p.b, p.hk, p.s, p.d4 * 4]);
  const dv = outputOf(dev, outs[2]!, [p.b, p.hk, p.s, p.d4 * 4]);
  const delta = dev.alloc(p.b * p.h * p.lp, "f32");
  const mask = maskInputs(dev, extra, attrs);
  const named = [q!.t, k!.t, v!.t, o!.t, lseIn!, g!.t, ...mask.tensors].map((tensor, i) => ({
    name: `x${i}`,
    tensor,
  }));
  const padded = { q: q!, k: k!, v: v!, o: o!, g: g! };
  const slots = { q: 0, k: 1, v: 2, o: 3, g: 5 };
  const helpers = allowedWgsl(attrs, 6, hasPadWord) +
    (["q", "k", "v", "o", "g"] as const).map((name) =>
      rowReader(name, `x${slots[name]}`, padded[name].t.dtype, dev.strategy)
    ).join("\n");
  if (p.l > 0 && p.b * p.h > 0) {
    dev.dispatch({
      code: dqWgsl(helpers, p.dc, p.d4Const),
      inputs: named,
      outputs: [{ name: "dq", storage: dq.t.storage }, { name: "dl", storage: delta }],
      uniforms: p.words,
      workgroups: [Math.ceil(p.l / 32), p.b * p.h],
    });
  }
  if (p.s > 0 && p.b * p.hk > 0) {
    dev.dispatch({
      code: dkdvWgsl(helpers, p.dc, p.d4Const),
      inputs: [...named, {
        name: "dl",
        tensor: { storage: delta, shape: [p.b * p.h * p.lp], dtype: "f32" },
      }],
      outputs: [{ name: "dk", storage: dk.t.storage }, { name: "dv", storage: dv.t.storage }],
      uniforms: p.words,
      workgroups: [Math.ceil(p.s / 32), p.b * p.hk],
    });
  }
  dev.release(delta);
  for (const x of [q, k, v, o, g]) if (x!.temp) dev.release(x!.t.storage);
  if (mask.placeholder) dev.release(mask.placeholder);
  return [dq.finish(), dk.finish(), dv.finish()];
}
