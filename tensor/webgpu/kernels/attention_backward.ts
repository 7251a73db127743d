// The flash-attention backward kernels (flash-attention 2): probabilities are recomputed from
// the saved logsumexp, p = exp(scale·q·k − lse), and with Δ = rowsum(dO ⊙ O),
//   ds = p·(dO·v − Δ),  dq = scale·Σ_keys ds·k,  dk = scale·Σ_rows ds·q,  dv = Σ_rows p·dO.
// Two kernels, neither storing an L×S matrix: dq (and Δ) over tiles of query rows, each lane
// owning 4 rows and walking blocks of 4 keys as the forward kernel does; then dk, dv over
// tiles of keys, each lane owning 4 keys and walking blocks of 4 query rows of every query
// head of its GQA group.
import { each } from "./attention_forward.ts";
import { quadRows } from "./attention_mask.ts";

const header = (d4: number | null) =>
  `let H = u(0u); let L = u(1u); let S = u(2u); let G = u(3u); let D4 = ${
    d4 === null ? "u(4u)" : `${d4}u`
  };
  let off = ui(5u); let scale = uf(6u); let LP = u(7u);`;

const entry = `@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;

/** Four dot products of a with b0..b3. */
const dot4 = (a: string, b: string) =>
  `vec4<f32>(dot(${a}, ${b}0), dot(${a}, ${b}1), dot(${a}, ${b}2), dot(${a}, ${b}3))`;

/** Σ_i w[i]·x{i}. */
const mix4 = (w: string, x: string) =>
  `${w}.x * ${x}0 + ${w}.y * ${x}1 + ${w}.z * ${x}2 + ${w}.w * ${x}3`;

/**
 * dq and Δ: inputs q, k, v, out, lse, dOut (x0–x5; rows read through `lq`, `lk`, `lv`, `lo`,
 * `lg`); outputs `dq` ([B, H, L, 4·D4]) and `dl` (Δ, [B, H, LP]).
 */
export function dqWgsl(helpers: string, dc: number, d4: number | null): string {
  return `${helpers}
const DC = ${dc}u;
${entry} {
  ${header(d4)}
  let bh = wid.y; let b = bh / H;
  let i0 = (wid.x * 8u + lid.x) * 4u;
  if (i0 >= L) { return; }
  let kv = (b * (H / G) + (bh % H) / G) * S;
  let last = min(3u, L - 1u - i0);
  ${
    each((r) =>
      `let qt${r} = (bh * L + i0 + min(${r}u, last)) * D4;
  let qa${r} = at_q(qt${r}); let ga${r} = at_g(qt${r}); let oa${r} = at_o(qt${r});`
    )
  }
  ${
    each((r) =>
      `var q${r}: array<vec4<f32>, DC>; var g${r}: array<vec4<f32>, DC>; var a${r}: array<vec4<f32>, DC>;`
    )
  }
  var delta = vec4<f32>(0.0);
  for (var c = 0u; c < D4; c++) {
    ${
    each((r) =>
      `q${r}[c] = lq(qa${r}, c); g${r}[c] = lg(ga${r}, c); a${r}[c] = vec4<f32>(0.0);
    delta[${r}] += dot(g${r}[c], lo(oa${r}, c));`, "\n    ")
  }
  }
  let lse = vec4<f32>(${each((r) => `ld_x4(bh * L + i0 + min(${r}u, last))`, ", ")});
  let qp = off + i32(i0);
  let kEnd = u32(clamp(key_bound(qp + i32(last), i32(S)), -1i, i32(S) - 1i) + 1i);
  var kc = at_k(kv * D4); var vc = at_v(kv * D4);
  for (var j = 0u; j < kEnd; j += 4u) {
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
    var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
    var e0 = vec4<f32>(0.0); var e1 = vec4<f32>(0.0); var e2 = vec4<f32>(0.0); var e3 = vec4<f32>(0.0);
    for (var c = 0u; c < D4; c++) {
      let k0 = lk(t0, c); let k1 = lk(t1, c); let k2 = lk(t2, c); let k3 = lk(t3, c);
      let v0 = lv(u0, c); let v1 = lv(u1, c); let v2 = lv(u2, c); let v3 = lv(u3, c);
      ${
    each((r) => `s${r} += ${dot4(`q${r}[c]`, "k")}; e${r} += ${dot4(`g${r}[c]`, "v")};`, "\n      ")
  }
    }
    ${
    each((r) =>
      `let p${r} = select(vec4<f32>(0.0), exp(s${r} * scale - lse[${r}]), ok${r});
    let d${r} = p${r} * (e${r} - delta[${r}]) * scale;`, "\n    ")
  }
    for (var c = 0u; c < D4; c++) {
      let k0 = lk(t0, c); let k1 = lk(t1, c); let k2 = lk(t2, c); let k3 = lk(t3, c);
      ${each((r) => `a${r}[c] += ${mix4(`d${r}`, "k")};`, "\n      ")}
    }
  }
  for (var c = 0u; c < D4; c++) {
    ${each((r) => `if (${r}u <= last) { st_dq(qt${r} + c, a${r}[c]); }`, "\n    ")}
  }
  st_dl((bh * LP + i0) / 4u, delta);
}`;
}

/**
 * dk and dv: inputs as `dqWgsl` plus Δ (`dl`); outputs `dk`, `dv` ([B, Hk, S, 4·D4]).
 */
export function dkdvWgsl(helpers: string, dc: number, d4: number | null): string {
  return `${helpers}
const DC = ${dc}u;
${entry} {
  ${header(d4)}
  let HK = H / G;
  let bk = wid.y; let b = bk / HK; let kvh = bk % HK;
  let j0 = (wid.x * 8u + lid.x) * 4u;
  if (j0 >= S) { return; }
  let lastk = min(3u, S - 1u - j0);
  ${
    each((r) =>
      `let kt${r} = (bk * S + j0 + min(${r}u, lastk)) * D4; let ka${r} = at_k(kt${r}); let va${r} = at_v(kt${r});`
    )
  }
  ${
    each((r) =>
      `var k${r}: array<vec4<f32>, DC>; var v${r}: array<vec4<f32>, DC>;
  var dk${r}: array<vec4<f32>, DC>; var dv${r}: array<vec4<f32>, DC>;`
    )
  }
  for (var c = 0u; c < D4; c++) {
    ${
    each(
      (r) =>
        `k${r}[c] = lk(ka${r}, c); v${r}[c] = lv(va${r}, c); dk${r}[c] = vec4<f32>(0.0); dv${r}[c] = vec4<f32>(0.0);`,
      "\n    ",
    )
  }
  }
  // the group's query rows are consecutive: one cursor walks them all
  var qc = at_q((b * H + kvh * G) * L * D4); var gc = at_g((b * H + kvh * G) * L * D4);
  for (var g = 0u; g < G; g++) {
    let bh = b * H + kvh * G + g;
    for (var i = 0u; i < L; i += 4u) {
      let qp = off + i32(i);
      let last = min(3u, L - 1u - i);
      ${quadRows("q", "t", "qc", (x) => `${x}u > last`)}
      ${quadRows("g", "u", "gc", (x) => `${x}u > last`)}
      // no row of this block reaches the lane's first key
      if (key_bound(qp + i32(last), i32(S)) < i32(j0)) { continue; }
      ${
    each((r) =>
      `let ok${r} = vec4<bool>(${
        each((x) =>
          `${x}u <= last && allowed_in(b, qp + ${x}i, j0 + ${r}u, S)`, ", ")
      });`, "\n      ")
  }
      if (!(any(ok0) || any(ok1) || any(ok2) || any(ok3))) { continue; }
      let lse = vec4<f32>(${each((x) => `ld_x4(bh * L + i + min(${x}u, last))`, ", ")});
      let delta = ld4_dl((bh * LP + i) / 4u);
      var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
      var e0 = vec4<f32>(0.0); var e1 = vec4<f32>(0.0); var e2 = vec4<f32>(0.0); var e3 = vec4<f32>(0.0);
      for (var c = 0u; c < D4; c++) {
        let q0 = lq(t0, c); let q1 = lq(t1, c); let q2 = lq(t2, c); let q3 = lq(t3, c);
        let g0 = lg(u0, c); let g1 = lg(u1, c); let g2 = lg(u2, c); let g3 = lg(u3, c);
        ${
    each(
      (r) => `s${r} += ${dot4(`k${r}[c]`, "q")}; e${r} += ${dot4(`v${r}[c]`, "g")};`,
      "\n        ",
    )
  }
      }
      ${
    each((r) =>
      `let p${r} = select(vec4<f32>(0.0), exp(s${r} * scale - lse), ok${r});
      let d${r} = p${r} * (e${r} - delta) * scale;`, "\n      ")
  }
      for (var c = 0u; c < D4; c++) {
        let q0 = lq(t0, c); let q1 = lq(t1, c); let q2 = lq(t2, c); let q3 = lq(t3, c);
        let g0 = lg(u0, c); let g1 = lg(u1, c); let g2 = lg(u2, c); let g3 = lg(u3, c);
        ${
    each((r) =>
      `dv${r}[c] += ${mix4(`p${r}`, "g")}; dk${r}[c] += ${mix4(`d${r}`, "q")};`, "\n        ")
  }
      }
    }
  }
  for (var c = 0u; c < D4; c++) {
    ${
    each(
      (r) => `if (${r}u <= lastk) { st_dk(kt${r} + c, dk${r}[c]); st_dv(kt${r} + c, dv${r}[c]); }`,
      "\n    ",
    )
  }
  }
}`;
}
