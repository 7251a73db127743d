// Attention on WebGPU, simple and correct: one invocation per output element, a streaming
// pass over the keys (online softmax), no L×L matrix in memory.
import type { Storage } from "../../device.ts";
import { maskToWgsl } from "../../mask.ts";
import type { Meta } from "../../op.ts";
import { type AttentionAttrs, attentionDims } from "../../ops/attention.ts";
import type { WebGpuDevice } from "../device.ts";
import { f32Word } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { elementwise } from "./elementwise.ts";

/**
 * WGSL `allowed(b, q, k, s) -> bool`: the mask expression compiled, plus key padding. The
 * key-padding input is `x{first}`, token arrays follow it.
 */
export function allowedWgsl(attrs: AttentionAttrs, first: number): string {
  const tokenBase = first + (attrs.hasKeyValid ? 1 : 0);
  const token = (array: number, pos: string) =>
    `token_at(ld_x${tokenBase + array}(b * s + clamp_pos(${pos}, s)), ${pos}, s)`;
  const pad = attrs.hasKeyValid ? `if (ld_x${first}(b * s + u32(k)) == 0i) { return false; }` : "";
  return `
fn clamp_pos(pos: i32, s: u32) -> u32 { return u32(clamp(pos, 0i, i32(s) - 1i)); }
fn token_at(value: i32, pos: i32, s: u32) -> i32 { return select(-1i, value, pos >= 0i && u32(pos) < s); }
fn allowed(b: u32, q: i32, k: i32, s: u32) -> bool {
  ${pad}
  let n = i32(s);
  return ${maskToWgsl(attrs.mask.node, token)};
}`;
}

const header =
  `let H = u(X + 1u); let L = u(X + 2u); let D = u(X + 3u); let S = u(X + 4u); let G = u(X + 5u);
  let off = ui(X + 6u); let scale = uf(X + 7u);`;

function uniforms(inputs: readonly GpuTensor[], attrs: AttentionAttrs): number[] {
  const { b, h, l, d, s, group } = attentionDims(inputs, attrs);
  return [b, h, l, d, s, group, attrs.queryOffset >>> 0, f32Word(attrs.scale)];
}

/** Scores of row r = (bi, hi, i) against key j, from q = x0 and k = x1. */
const scoreFn = `
fn score(qb: u32, kb: u32, D: u32, scale: f32) -> f32 {
  var dot = 0.0;
  for (var c = 0u; c < D; c++) { dot += ld_x0(qb + c) * ld_x1(kb + c); }
  return dot * scale;
}`;

/** [out, lse] by a per-element online softmax. */
export function attentionSimple(
  dev: WebGpuDevice,
  inputs: readonly GpuTensor[],
  attrs: AttentionAttrs,
  outs: readonly Meta[],
): Storage[] {
  const helpers = allowedWgsl(attrs, 3) + scoreFn;
  const scan = (withValue: boolean) => `
  let bi = r / (H * L); let hi = (r / L) % H; let i = r % L;
  let kv = (bi * (H / G) + hi / G) * S * D;
  var m = -3.0e38; var sum = 0.0; var acc = 0.0;
  for (var j = 0u; j < S; j++) {
    if (!allowed(bi, off + i32(i), i32(j), S)) { continue; }
    let sc = score(r * D, kv + j * D, D, scale);
    let mn = max(m, sc);
    let corr = exp(m - mn);
    let p = exp(sc - mn);
    sum = sum * corr + p;
    ${withValue ? "acc = acc * corr + p * ld_x2(kv + j * D + c);" : ""}
    m = mn;
  }`;
  const extra = uniforms(inputs, attrs);
  const out = elementwise(dev, {
    name: "attention-out",
    inputs,
    out: outs[0]!,
    body: `${header}
  let r = e / D; let c = e % D;
  ${scan(true)}
  if (sum == 0.0) { return 0.0; }
  return acc / sum;`,
    extra,
    raw: true,
    helpers,
  });
  const lse = elementwise(dev, {
    name: "attention-lse",
    inputs,
    out: outs[1]!,
    body: `${header}
  let r = e;
  ${scan(false)}
  if (sum == 0.0) { return -bitcast<f32>(0x7f800000u); }
  return m + log(sum);`,
    extra,
    raw: true,
    helpers,
  });
  return [out, lse];
}

/**
 * [dq, dk, dv] from q, k, v, out, lse, dOut (x0…x5): p = exp(score − lse),
 * ds = p·(dOut·v − dOut·out), dq = scale·Σ_j ds·k, dk = scale·Σ_i ds·q, dv = Σ_i p·dOut.
 */
export function attentionBackwardSimple(
  dev: WebGpuDevice,
  inputs: readonly GpuTensor[],
  attrs: AttentionAttrs,
  outs: readonly Meta[],
): Storage[] {
  const [q, k, v, , , , ...extra] = inputs;
  const extraU = uniforms([q!, k!, v!, ...extra], attrs);
  const helpers = allowedWgsl(attrs, 6) + scoreFn + `
fn dot_do(a: u32, b: u32, D: u32) -> f32 {
  var acc = 0.0;
  for (var c = 0u; c < D; c++) { acc += ld_x5(a + c) * ld_x2(b + c); }
  return acc;
}
fn delta(r: u32, D: u32) -> f32 {
  var acc = 0.0;
  for (var c = 0u; c < D; c++) { acc += ld_x5(r * D + c) * ld_x3(r * D + c); }
  return acc;
}`;
  const dq = elementwise(dev, {
    name: "attention-dq",
    inputs,
    out: outs[0]!,
    body: `${header}
  let r = e / D; let c = e % D;
  let bi = r / (H * L); let hi = (r / L) % H; let i = r % L;
  let kv = (bi * (H / G) + hi / G) * S * D;
  let lse = ld_x4(r);
  if (lse < -3.0e38) { return 0.0; }
  let dl = delta(r, D);
  var acc = 0.0;
  for (var j = 0u; j < S; j++) {
    if (!allowed(bi, off + i32(i), i32(j), S)) { continue; }
    let p = exp(score(r * D, kv + j * D, D, scale) - lse);
    acc += p * (dot_do(r * D, kv + j * D, D) - dl) * ld_x1(kv + j * D + c);
  }
  return acc * scale;`,
    extra: extraU,
    raw: true,
    helpers,
  });
  // dk and dv: element (bi, kvh, j, c); sum over the group's query heads and rows
  const keySide = (grad: "dk" | "dv") =>
    `${header}
  let hk = H / G;
  let j = (e / D) % S; let c = e % D; let kvh = (e / (D * S)) % hk; let bi = e / (D * S * hk);
  let kv = (bi * hk + kvh) * S * D;
  var acc = 0.0;
  for (var g = 0u; g < G; g++) {
    let hi = kvh * G + g;
    for (var i = 0u; i < L; i++) {
      if (!allowed(bi, off + i32(i), i32(j), S)) { continue; }
      let r = (bi * H + hi) * L + i;
      let lse = ld_x4(r);
      let p = exp(score(r * D, kv + j * D, D, scale) - lse);
      ${
      grad === "dv"
        ? "acc += p * ld_x5(r * D + c);"
        : "acc += p * (dot_do(r * D, kv + j * D, D) - delta(r, D)) * ld_x0(r * D + c);"
    }
    }
  }
  return ${grad === "dk" ? "acc * scale" : "acc"};`;
  const dk = elementwise(dev, {
    name: "attention-dk",
    inputs,
    out: outs[1]!,
    body: keySide("dk"),
    extra: extraU,
    raw: true,
    helpers,
  });
  const dv = elementwise(dev, {
    name: "attention-dv",
    inputs,
    out: outs[2]!,
    body: keySide("dv"),
    extra: extraU,
    raw: true,
    helpers,
  });
  return [dq, dk, dv];
}
