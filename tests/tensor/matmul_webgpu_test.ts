// The WebGPU matmul kernels (tensor/webgpu/kernels/matmul*.ts) against the reference backend,
// on both storage strategies: random M, N, K (1, tile edges, not multiples of tiles), all four
// transposes, broadcast batches, f32 and bf16/f16 operands. The tolerance is the classical
// bound for a K-term f32 dot product, |x − ref| ≤ 2·K·u·Σ|a||b| (+ a tiny absolute term),
// far below what an indexing or padding bug produces.
import fc from "fast-check";
import type { Device } from "../../tensor/device.ts";
import type { DType } from "../../tensor/dtype.ts";
import { tensor } from "../../tensor/create.ts";
import { abs } from "../../tensor/ops/elementwise.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { reshape } from "../../tensor/ops/layout.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { webgpuBackends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

const u = 2 ** -24;

interface Case {
  m: number;
  k: number;
  n: number;
  batchA: number[];
  batchB: number[];
  transA: boolean;
  transB: boolean;
  dtypeA: DType;
  dtypeB: DType;
  seed: number;
}

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The worst violation of the tolerance, or null when every element is within it. */
async function compare(device: Device, c: Case): Promise<string | null> {
  const sa = [...c.batchA, ...(c.transA ? [c.k, c.m] : [c.m, c.k])];
  const sb = [...c.batchB, ...(c.transB ? [c.n, c.k] : [c.k, c.n])];
  const va = values(size(sa), c.seed), vb = values(size(sb), c.seed + 1);
  const attrs = { transA: c.transA, transB: c.transB };
  const [got, want, bound] = await scopeAsync(async () => {
    const on = (d: Device) =>
      [
        tensor(va, sa, { device: d, dtype: c.dtypeA }),
        tensor(vb, sb, { device: d, dtype: c.dtypeB }),
      ] as const;
    const [ga, gb] = on(device);
    const [ra, rb] = on(referenceDevice);
    return await Promise.all([
      matmul(ga, gb, attrs).data(),
      matmul(ra, rb, attrs).data(),
      matmul(abs(ra), abs(rb), attrs).data(),
    ]);
  });
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  let worst: string | null = null, worstRatio = 1;
  for (let i = 0; i < want.length; i++) {
    const tol = 2 * c.k * u * bound[i]! + 1e-30;
    const err = Math.abs(got[i]! - want[i]!);
    const ratio = Number.isNaN(err) ? Infinity : err / tol;
    if (ratio > worstRatio) {
      worstRatio = ratio;
      worst = `element ${i}: ${got[i]} vs reference ${want[i]} (tolerance ${tol.toExponential(2)})`;
    }
  }
  return worst;
}

/** Sizes that hit 1, the tile edges (4, 8, 16, 128) and values off them. */
const dimension = fc.oneof(
  fc.constantFrom(1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 127, 128, 129),
  fc.integer({ min: 1, max: 150 }),
);

/** Batch shapes of a and b, broadcasting as numpy does. */
const batches = fc.constantFrom<[number[], number[]]>(
  [[], []],
  [[2, 3], []],
  [[], [2]],
  [[1], [4]],
  [[3], [3]],
  [[2, 1], [1, 3]],
);

const dtypes = fc.constantFrom<[DType, DType]>(
  ["f32", "f32"],
  ["f32", "bf16"],
  ["f32", "f16"],
  ["bf16", "bf16"],
  ["f16", "f32"],
);

const cases: fc.Arbitrary<Case> = fc.record({
  m: dimension,
  k: dimension,
  n: dimension,
  batch: batches,
  transA: fc.boolean(),
  transB: fc.boolean(),
  dtype: dtypes,
  seed: fc.integer({ min: 1, max: 1 << 30 }),
}).map(({ batch: [batchA, batchB], dtype: [dtypeA, dtypeB], ...c }) => ({
  ...c,
  batchA,
  batchB,
  dtypeA,
  dtypeB,
}));

for (const device of webgpuBackends) {
  Deno.test(`matmul() on ${device.name} equals the reference`, async () => {
    await assertProperty(
      fc.asyncProperty(cases, async (c) => {
        const bad = await compare(device, c);
        if (bad) throw new Error(`matmul ${JSON.stringify(c)}: ${bad}`);
      }),
      25,
    );
  });

  Deno.test(`matmul() on ${device.name} equals the reference at 300×260 @ 260×200`, async () => {
    for (const [transA, transB, dtypeB] of [[false, false, "f32"], [true, true, "bf16"]] as const) {
      const c: Case = {
        m: 300,
        k: 260,
        n: 200,
        batchA: [],
        batchB: [],
        transA,
        transB,
        dtypeA: "f32",
        dtypeB,
        seed: 7,
      };
      const bad = await compare(device, c);
      if (bad) throw new Error(`matmul ${JSON.stringify(c)}: ${bad}`);
    }
  });

  Deno.test(`matmul() on ${device.name} keeps a weight's packing per shape`, async () => {
    // the texture strategy caches b's packed panels per storage: the same b against new a,
    // and a reshaped view of the same storage, must each read the right panels
    await scopeAsync(async () => {
      const vb = values(96 * 260, 5);
      const b = tensor(vb, [260, 96], { device, dtype: "bf16" });
      const rb = tensor(vb, [260, 96], { device: referenceDevice, dtype: "bf16" });
      const views = [[260, 96, true], [96, 260, false], [520, 48, true]] as const;
      for (
        const [m, [r, c, transB]] of [[1, views[0]], [37, views[0]], [5, views[1]], [
          9,
          views[2],
        ]] as const
      ) {
        const k = transB ? c : r;
        const va = values(m * k, m);
        const got = await matmul(tensor(va, [m, k], { device }), reshape(b, [r, c]), { transB })
          .data();
        const ra = tensor(va, [m, k], { device: referenceDevice });
        const want = await matmul(ra, reshape(rb, [r, c]), { transB }).data();
        const bound = await matmul(abs(ra), abs(reshape(rb, [r, c])), { transB }).data();
        want.forEach((w, i) => {
          const tol = 2 * k * u * bound[i]! + 1e-30;
          if (!(Math.abs(got[i]! - w) <= tol)) {
            throw new Error(
              `matmul [${m},${k}] @ [${r},${c}]${transB ? "ᵀ" : ""}: element ${i}: ${
                got[i]
              } vs ${w}`,
            );
          }
        });
      }
    });
  });
}
