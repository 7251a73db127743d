// Matmul for the buffer strategy (real GPUs): 64×64 output tiles, a 16×16 workgroup, 4×4
// outputs per invocation, operands staged through workgroup memory 16 k at a time. Operands
// are read with the `ld_` accessors, so chunked tensors (larger than one binding) and
// bf16/f16 operands work unchanged. On lavapipe this kernel is slow (DESIGN 5.1: workgroup
// memory and buffer loads cost ~35 ns per 8 lanes); the texture strategy is used there.
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import type { WebGpuDevice } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { batchIndexWgsl, type MatmulPlan } from "./matmul_plan.ts";

const tile = 64;
const tileK = 16;

// Uniform words: 0 M, 1 K, 2 N, 3 transA, 4 transB, 5… batch map.
const code = `
${batchIndexWgsl(5)}
var<workgroup> As: array<vec4<f32>, ${(tile * tileK) / 4}>; // [k][row], 4 rows per vec4
var<workgroup> Bs: array<vec4<f32>, ${(tile * tileK) / 4}>; // [k][col], 4 cols per vec4

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let M = u(0u); let K = u(1u); let N = u(2u);
  let transA = u(3u) == 1u; let transB = u(4u) == 1u;
  let bi = batchIndex(wg.z);
  let aBase = bi.x * M * K; let bBase = bi.y * K * N;
  // element (i, p) of a and (p, j) of b
  let ai = select(K, 1u, transA); let ap = select(1u, M, transA);
  let bp = select(N, 1u, transB); let bj = select(1u, K, transB);
  let row0 = wg.y * ${tile}u; let col0 = wg.x * ${tile}u;
  var acc0 = vec4<f32>(); var acc1 = vec4<f32>(); var acc2 = vec4<f32>(); var acc3 = vec4<f32>();
  for (var k0 = 0u; k0 < K; k0 += ${tileK}u) {
    for (var l = 0u; l < ${(tile * tileK) / 256}u; l++) {
      let e = li + l * 256u;
      // consecutive invocations read consecutive addresses of the stored layout
      let ra = select(e / ${tileK}u, e % ${tile}u, transA);
      let ka = select(e % ${tileK}u, e / ${tile}u, transA);
      let i = row0 + ra; let pa = k0 + ka;
      var va = 0.0;
      if (i < M && pa < K) { va = ld_a(aBase + i * ai + pa * ap); }
      As[ka * ${tile / 4}u + (ra >> 2u)][ra & 3u] = va;
      let cb = select(e % ${tile}u, e / ${tileK}u, transB);
      let kb = select(e / ${tile}u, e % ${tileK}u, transB);
      let j = col0 + cb; let pb = k0 + kb;
      var vb = 0.0;
      if (j < N && pb < K) { vb = ld_b(bBase + pb * bp + j * bj); }
      Bs[kb * ${tile / 4}u + (cb >> 2u)][cb & 3u] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${tileK}u; kk++) {
      let av = As[kk * ${tile / 4}u + lid.y];
      let bv = Bs[kk * ${tile / 4}u + lid.x];
      acc0 += av.x * bv; acc1 += av.y * bv; acc2 += av.z * bv; acc3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let oBase = wg.z * M * N;
  let col = col0 + lid.x * 4u;
  let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var r = 0u; r < 4u; r++) {
    let row = row0 + lid.y * 4u + r;
    if (row >= M) { break; }
    let v = accs[r];
    for (var c = 0u; c < 4u; c++) {
      if (col + c < N) { st1_out(oBase + row * N + col + c, v[c]); }
    }
  }
}`;

/** The shared-memory tiled matmul over storage buffers. */
export function matmulBuffer(
  dev: WebGpuDevice,
  a: GpuTensor,
  b: GpuTensor,
  plan: MatmulPlan,
  out: Meta,
): Storage {
  const storage = dev.allocFor(out);
  const { m, k, n } = plan;
  dev.dispatch({
    code,
    inputs: [{ name: "a", tensor: a }, { name: "b", tensor: b }],
    outputs: [{ name: "out", storage }],
    uniforms: [m, k, n, plan.transA ? 1 : 0, plan.transB ? 1 : 0, ...plan.batchWords],
    workgroups: [Math.ceil(n / tile), Math.ceil(m / tile), plan.batches],
  });
  return storage;
}
