// DP statistics on WebGPU: one invocation per query row, an online softmax over every key
// (no mask but key padding) carrying the before / diagonal / after sums, rescaled together,
// and one texel store of (before, diagonal, after, logsumexp).
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import type { DpStatsAttrs } from "../../ops/dp_stats.ts";
import type { WebGpuDevice } from "../device.ts";
import { f32Word } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { entry, grid, invocationIndex } from "./elementwise.ts";

export function dpStats(
  dev: WebGpuDevice,
  inputs: readonly GpuTensor[],
  attrs: DpStatsAttrs,
  out: Meta,
): Storage {
  const [q, k] = inputs;
  const [b, h, l, d] = q!.shape as [number, number, number, number];
  const [, hk, s] = k!.shape as [number, number, number, number];
  const rows = b * h * l;
  const storage = dev.allocFor(out);
  if (rows === 0) return storage;
  const pad = attrs.hasKeyValid ? "if (ld_x2(bi * S + j) == 0i) { continue; }" : "";
  const code = `
${entry()} {
  let H = u(1u); let L = u(2u); let D = u(3u); let S = u(4u); let G = u(5u);
  let off = u(6u); let scale = uf(7u);
  ${invocationIndex("u(0u)")}
  let r = id;
  let bi = r / (H * L); let hi = (r / L) % H; let i = r % L;
  let kv = (bi * (H / G) + hi / G) * S * D;
  let qi = off + i;
  var m = -3.0e38; var total = 0.0; var before = 0.0; var diag = 0.0; var after = 0.0;
  for (var j = 0u; j < S; j++) {
    ${pad}
    var dot = 0.0;
    for (var c = 0u; c < D; c++) { dot += ld_x0(r * D + c) * ld_x1(kv + j * D + c); }
    let sc = dot * scale;
    if (sc > m) {
      let corr = exp(m - sc);
      total *= corr; before *= corr; diag *= corr; after *= corr;
      m = sc;
    }
    let p = exp(sc - m);
    total += p;
    if (j < qi) { before += p; } else if (j == qi) { diag += p; } else { after += p; }
  }
  if (total == 0.0) { st_out(r, vec4<f32>(0.0, 0.0, 0.0, -bitcast<f32>(0x7f800000u))); return; }
  st_out(r, vec4<f32>(before / total, diag / total, after / total, m + log(total)));
}`;
  dev.dispatch({
    code,
    inputs: inputs.map((tensor, i) => ({ name: `x${i}`, tensor })),
    outputs: [{ name: "out", storage }],
    uniforms: [rows, h, l, d, s, h / hk, attrs.queryOffset, f32Word(attrs.scale)],
    workgroups: grid(rows),
  });
  return storage;
}
