// The flash-attention forward kernel (DESIGN 2.4, 5.1). A workgroup of 8 lanes takes 32
// consecutive query rows of one head; each lane owns 4 of them, with their q rows and output
// accumulators in registers. The lanes walk the head's keys in blocks of 4: every k / v texel
// loaded feeds 4 rows (and the 8 lanes load the same texels, which stay in cache), scores
// go through an online softmax, and no L×L matrix is ever stored. Key blocks that no row of
// the lane may attend cost only the mask test; keys beyond `key_bound` of the lane's last
// query are not visited at all (causal: the upper triangle).
import { quadRows } from "./attention_mask.ts";

/** Rows per lane, keys per block (both 4: a row quad's lse is one texel). */
export const quad = [0, 1, 2, 3] as const;

/** Join a line of WGSL per index. */
export const each = (f: (i: number) => string, sep = "\n  ") => quad.map(f).join(sep);

/**
 * The forward kernel: inputs q, k, v (x0–x2, read through `lq`, `lk`, `lv`), outputs `out`
 * ([B, H, L, 4·D4]) and `lse` ([B, H, LP], LP = L rounded up to 4). `dc` is the register
 * capacity in texels per row; `d4` bakes the row length in when given.
 */
export function forwardWgsl(helpers: string, dc: number, d4: number | null): string {
  // scores of the lane's rows against keys j..j+3: s{r}[key]
  const scores = `var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
    for (var c = 0u; c < D4; c++) {
      let k0 = lk(t0, c); let k1 = lk(t1, c); let k2 = lk(t2, c); let k3 = lk(t3, c);
      ${
    each(
      (r) =>
        `s${r} += vec4<f32>(dot(q${r}[c], k0), dot(q${r}[c], k1), dot(q${r}[c], k2), dot(q${r}[c], k3));`,
      "\n      ",
    )
  }
    }`;
  return `${helpers}
const DC = ${dc}u;
fn hmax(v: vec4<f32>) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }
fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let H = u(0u); let L = u(1u); let S = u(2u); let G = u(3u); let D4 = ${
    d4 === null ? "u(4u)" : `${d4}u`
  };
  let off = ui(5u); let scale = uf(6u); let LP = u(7u);
  let bh = wid.y; let b = bh / H;
  let i0 = (wid.x * 8u + lid.x) * 4u;
  if (i0 >= L) { return; }
  let kv = (b * (H / G) + (bh % H) / G) * S; // the head's first key row
  let last = min(3u, L - 1u - i0); // rows past L repeat row L − 1 and are never stored
  ${each((r) => `var q${r}: array<vec4<f32>, DC>; var a${r}: array<vec4<f32>, DC>;`)}
  ${each((r) => `let qt${r} = (bh * L + i0 + min(${r}u, last)) * D4; let qa${r} = at_q(qt${r});`)}
  for (var c = 0u; c < D4; c++) {
    ${each((r) => `q${r}[c] = lq(qa${r}, c); a${r}[c] = vec4<f32>(0.0);`, "\n    ")}
  }
  let qp = off + i32(i0);
  let kEnd = u32(clamp(key_bound(qp + i32(last), i32(S)), -1i, i32(S) - 1i) + 1i);
  var m = vec4<f32>(-3.0e38); var l = vec4<f32>(0.0);
  var kc = at_k(kv * D4); var vc = at_v(kv * D4);
  for (var j = 0u; j < kEnd; j += 4u) {
    // keys past S repeat key S − 1 (finite values; their probability is 0)
    ${quadRows("k", "t", "kc", (r) => `j + ${r}u >= S`)}
    ${quadRows("v", "u", "vc", (r) => `j + ${r}u >= S`)}
    ${
    each(
      (r) =>
        `let ok${r} = vec4<bool>(allowed_in(b, qp + ${r}i, j, S), allowed_in(b, qp + ${r}i, j + 1u, S), allowed_in(b, qp + ${r}i, j + 2u, S), allowed_in(b, qp + ${r}i, j + 3u, S));`,
      "\n    ",
    )
  }
    if (!(any(ok0) || any(ok1) || any(ok2) || any(ok3))) { continue; }
    ${scores}
    ${each((r) => `let y${r} = select(vec4<f32>(-3.0e38), s${r} * scale, ok${r});`, "\n    ")}
    let mn = max(m, vec4<f32>(hmax(y0), hmax(y1), hmax(y2), hmax(y3)));
    let corr = exp(m - mn);
    ${each((r) => `let p${r} = select(vec4<f32>(0.0), exp(y${r} - mn[${r}]), ok${r});`, "\n    ")}
    l = l * corr + vec4<f32>(hsum(p0), hsum(p1), hsum(p2), hsum(p3));
    m = mn;
    for (var c = 0u; c < D4; c++) {
      let v0 = lv(u0, c); let v1 = lv(u1, c); let v2 = lv(u2, c); let v3 = lv(u3, c);
      ${
    each(
      (r) =>
        `a${r}[c] = a${r}[c] * corr[${r}] + p${r}.x * v0 + p${r}.y * v1 + p${r}.z * v2 + p${r}.w * v3;`,
      "\n      ",
    )
  }
    }
  }
  // a fully masked row: out 0, lse −∞
  let seen = l > vec4<f32>(0.0);
  let inv = select(vec4<f32>(0.0), 1.0 / l, seen);
  for (var c = 0u; c < D4; c++) {
    ${each((r) => `if (${r}u <= last) { st_out(qt${r} + c, a${r}[c] * inv[${r}]); }`, "\n    ")}
  }
  st_lse((bh * LP + i0) / 4u, select(vec4<f32>(-bitcast<f32>(0x7f800000u)), m + log(l), seen));
}`;
}
