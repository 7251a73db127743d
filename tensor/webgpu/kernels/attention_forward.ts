// The flash-attention forward kernel (DESIGN 2.4, 5.1). A workgroup of 8 lanes takes 32
// consecutive query rows of one head; each lane owns 4 of them, with their q rows and output
// accumulators in registers. The lanes walk the head's keys in blocks of 4: every k / v texel
// loaded feeds 4 rows (and the 8 lanes load the same texels, which stay in cache), scores
// go through an online softmax, and no L×L matrix is ever stored. Key blocks that no row of
// the lane may attend cost only the mask test; keys beyond `key_bound` of the lane's last
// query are not visited at all (causal: the upper triangle).
//
// With `stats` the same pass also yields the DP statistics (DESIGN 3.4): the softmax over
// ALL live keys (key padding only, no mask) and its masses before / on / after each row's
// diagonal (key qp + r). Every live key is then visited, and each key's exponential is
// taken once: an attended key's is the attention softmax's own p, kept as a second set of
// masses under that softmax's max; a key the mask excludes joins a "rest" online softmax with
// its own max. The two are combined once at the end (rescaled to their common max), so past
// `key_bound` only q·kᵀ and the rest softmax are added. With `attention` off the kernel
// computes the statistics alone (no v, out or lse): the `dpStats` op.
import { quadRows } from "./attention_mask.ts";

/** Rows per lane, keys per block (both 4: a row quad's lse is one texel). */
export const quad = [0, 1, 2, 3] as const;

/** Join a line of WGSL per index. */
export const each = (f: (i: number) => string, sep = "\n  ") => quad.map(f).join(sep);

/** What a forward dispatch writes: out and lse (`attention`), the DP statistics (`stats`). */
export interface ForwardParts {
  readonly attention: boolean;
  readonly stats: boolean;
}

const masses = [["Before", "<"], ["Diag", "=="], ["After", ">"]] as const;

/**
 * WGSL: `{prefix}Before`, `…Diag`, `…After` (one lane per row, vec4) rescaled by `rescale`
 * plus the weights `{w}0…{w}3` of keys `kj` that fall before / on / after row r's diagonal.
 */
const addMasses = (prefix: string, w: string, rescale: string) =>
  masses.map(([name, cmp]) =>
    `${prefix}${name} = ${prefix}${name} * ${rescale} + vec4<f32>(${
      each((r) => `hsum(select(vec4<f32>(0.0), ${w}${r}, kj ${cmp} vec4<i32>(qp + ${r}i)))`, ", ")
    });`
  ).join("\n    ");

/**
 * The forward kernel: inputs q, k, v (x0–x2, read through `lq`, `lk`, `lv`), outputs `out`
 * ([B, H, L, 4·D4]) and `lse` ([B, H, LP], LP = L rounded up to 4), and with `stats` the
 * output `stats` ([B, H, L, 4]: before, diagonal, after, logsumexp of the unmasked softmax;
 * the helpers then define `key_live`). `dc` is the register capacity in texels per row;
 * `d4` bakes the row length in when given.
 */
export function forwardWgsl(
  helpers: string,
  dc: number,
  d4: number | null,
  parts: ForwardParts = { attention: true, stats: false },
): string {
  const { attention, stats } = parts;
  const inf = "bitcast<f32>(0x7f800000u)";
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
  // which keys of the block each row attends: ok{r}
  const allowedKeys = (decl: string) =>
    each(
      (r) =>
        `${decl}ok${r} = vec4<bool>(allowed_in(b, qp + ${r}i, j, S), allowed_in(b, qp + ${r}i, j + 1u, S), allowed_in(b, qp + ${r}i, j + 2u, S), allowed_in(b, qp + ${r}i, j + 3u, S));`,
      "\n    ",
    );
  const anyAllowed = "any(ok0) || any(ok1) || any(ok2) || any(ok3)";
  // the masked online softmax and p·v
  const attend = `${
    each((r) => `let y${r} = select(vec4<f32>(-3.0e38), s${r} * scale, ok${r});`, "\n    ")
  }
    let mn = max(m, vec4<f32>(hmax(y0), hmax(y1), hmax(y2), hmax(y3)));
    let corr = exp(m - mn);
    ${each((r) => `let p${r} = select(vec4<f32>(0.0), exp(y${r} - mn[${r}]), ok${r});`, "\n    ")}
    l = l * corr + vec4<f32>(hsum(p0), hsum(p1), hsum(p2), hsum(p3));
    m = mn;${stats ? `\n    ${addMasses("p", "p", "corr")}` : ""}
    for (var c = 0u; c < D4; c++) {
      let v0 = lv(u0, c); let v1 = lv(u1, c); let v2 = lv(u2, c); let v3 = lv(u3, c);
      ${
    each(
      (r) =>
        `a${r}[c] = a${r}[c] * corr[${r}] + p${r}.x * v0 + p${r}.y * v1 + p${r}.z * v2 + p${r}.w * v3;`,
      "\n      ",
    )
  }
    }`;
  // the rest softmax: the live keys rest{r} that the attention softmax does not see
  const restSoftmax = `${
    each((r) => `let z${r} = select(vec4<f32>(-3.0e38), s${r} * scale, rest${r});`, "\n    ")
  }
    let mx = max(mu, vec4<f32>(hmax(z0), hmax(z1), hmax(z2), hmax(z3)));
    let cu = exp(mu - mx);
    ${each((r) => `let e${r} = select(vec4<f32>(0.0), exp(z${r} - mx[${r}]), rest${r});`, "\n    ")}
    ${addMasses("r", "e", "cu")}
    mu = mx;`;
  const liveKeys =
    `let live = vec4<bool>(key_live(b, j, S), key_live(b, j + 1u, S), key_live(b, j + 2u, S), key_live(b, j + 3u, S));
    if (!any(live)) { continue; }
    let kj = vec4<i32>(i32(j)) + vec4<i32>(0i, 1i, 2i, 3i);`;
  let body: string;
  if (!stats) {
    body = `${allowedKeys("let ")}
    if (!(${anyAllowed})) { continue; }
    ${scores}
    ${attend}`;
  } else if (!attention) {
    body = `${liveKeys}
    ${scores}
    ${each((r) => `let rest${r} = live;`, "\n    ")}
    ${restSoftmax}`;
  } else {
    body = `${liveKeys}
    ${allowedKeys("let ")}
    ${scores}
    if (${anyAllowed}) {
    ${attend}
    }
    ${each((r) => `let rest${r} = live & !ok${r};`, "\n    ")}
    if (any(rest0) || any(rest1) || any(rest2) || any(rest3)) {
    ${restSoftmax}
    }`;
  }
  // the two softmaxes of the statistics rescaled to their common max
  const combine = attention
    ? `let mAll = max(m, mu);
  let fp = exp(m - mAll); let fr = exp(mu - mAll);
  ${masses.map(([n]) => `let all${n} = p${n} * fp + r${n} * fr;`).join("\n  ")}`
    : `let mAll = mu;
  ${masses.map(([n]) => `let all${n} = r${n};`).join("\n  ")}`;
  const storeStats = `// a row without live keys: (0, 0, 0, −∞)
  ${combine}
  let total = allBefore + allDiag + allAfter;
  let seenAll = total > vec4<f32>(0.0);
  let invAll = select(vec4<f32>(0.0), 1.0 / total, seenAll);
  let lseAll = select(vec4<f32>(-${inf}), mAll + log(total), seenAll);
  ${
    each(
      (r) =>
        `if (${r}u <= last) { st_stats(bh * L + i0 + ${r}u, vec4<f32>(allBefore[${r}] * invAll[${r}], allDiag[${r}] * invAll[${r}], allAfter[${r}] * invAll[${r}], lseAll[${r}])); }`,
    )
  }`;
  const storeAttention = `// a fully masked row: out 0, lse −∞
  let seen = l > vec4<f32>(0.0);
  let inv = select(vec4<f32>(0.0), 1.0 / l, seen);
  for (var c = 0u; c < D4; c++) {
    ${each((r) => `if (${r}u <= last) { st_out(qt${r} + c, a${r}[c] * inv[${r}]); }`, "\n    ")}
  }
  st_lse((bh * LP + i0) / 4u, select(vec4<f32>(-${inf}), m + log(l), seen));`;
  const zeros = (names: readonly string[]) =>
    names.map((n) => `var ${n} = vec4<f32>(0.0);`).join(" ");
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
  ${
    each((r) =>
      `var q${r}: array<vec4<f32>, DC>;${attention ? ` var a${r}: array<vec4<f32>, DC>;` : ""}`
    )
  }
  ${each((r) => `let qt${r} = (bh * L + i0 + min(${r}u, last)) * D4; let qa${r} = at_q(qt${r});`)}
  for (var c = 0u; c < D4; c++) {
    ${
    each((r) =>
      `q${r}[c] = lq(qa${r}, c);${attention ? ` a${r}[c] = vec4<f32>(0.0);` : ""}`, "\n    ")
  }
  }
  let qp = off + i32(i0);
  ${
    attention
      ? `let kEnd = u32(clamp(key_bound(qp + i32(last), i32(S)), -1i, i32(S) - 1i) + 1i);
  var m = vec4<f32>(-3.0e38); var l = vec4<f32>(0.0);
  var vc = at_v(kv * D4);`
      : ""
  }
  ${
    stats
      ? `var mu = vec4<f32>(-3.0e38); ${zeros(masses.map(([n]) => `r${n}`))}${
        attention ? `\n  ${zeros(masses.map(([n]) => `p${n}`))}` : ""
      }`
      : ""
  }
  var kc = at_k(kv * D4);
  var j = 0u;
  for (; j < ${attention ? "kEnd" : "S"}; j += 4u) {
    // keys past S repeat key S − 1 (finite values; their probability is 0)
    ${quadRows("k", "t", "kc", (r) => `j + ${r}u >= S`)}
    ${attention ? quadRows("v", "u", "vc", (r) => `j + ${r}u >= S`) : ""}
    ${body}
  }${
    attention && stats
      ? `
  // past key_bound only the statistics: the rest softmax over every live key
  for (; j < S; j += 4u) {
    ${quadRows("k", "t", "kc", (r) => `j + ${r}u >= S`)}
    ${liveKeys}
    ${scores}
    ${each((r) => `let rest${r} = live;`, "\n    ")}
    ${restSoftmax}
  }`
      : ""
  }
  ${attention ? storeAttention : ""}
  ${stats ? storeStats : ""}
}`;
}
