// The WebGPU attention kernels (tensor/webgpu/kernels/attention*.ts) against the reference, on
// both storage strategies: forward (out, lse) and backward (dq, dk, dv), over GQA groups,
// sizes that are not multiples of the kernels' tiles, even head sizes, every registered mask
// variant, key padding (including a batch row with no valid key) and decoding with a KV cache
// (queryOffset > 0, L < S); with `dpStats`, the DP statistics output of the same pass too.
import fc from "fast-check";
import { maskVariants } from "../../nn/masks.ts";
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { apply } from "../../tensor/op.ts";
import {
  type AttentionAttrs,
  attentionBackwardOp,
  attentionOp,
} from "../../tensor/ops/attention.ts";
import { Rng } from "../../tensor/random.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assertClose, type Tolerance } from "../all_close.ts";
import { assertEquals } from "../assert.ts";
import { webgpuBackends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

/** One attention call: sizes, mask, padding, offset and the seed of its values. */
interface Case {
  b: number;
  hk: number;
  group: number;
  l: number;
  s: number;
  d: number;
  variant: number;
  /** none; right padding; right padding with batch row 0 fully padded. */
  padding: "none" | "right" | "emptyRow";
  /** Decode with a KV cache: queries are the last L of S positions. */
  cached: boolean;
  /** Also compute the DP statistics (the unmasked softmax's masses) in the forward pass. */
  dpStats: boolean;
  seed: number;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  b: fc.integer({ min: 1, max: 2 }),
  hk: fc.integer({ min: 1, max: 2 }),
  group: fc.integer({ min: 1, max: 3 }),
  l: fc.integer({ min: 1, max: 40 }),
  s: fc.integer({ min: 1, max: 40 }),
  // even D up to 60: D = 62, 64 get their own (slower to compile) pipelines, which the
  // fixed case at D = 64 below covers
  d: fc.integer({ min: 1, max: 30 }).map((n) => 2 * n),
  variant: fc.nat(maskVariants.length - 1),
  padding: fc.constantFrom("none" as const, "right" as const, "emptyRow" as const),
  cached: fc.boolean(),
  dpStats: fc.boolean(),
  seed: fc.nat(),
});

/** Host arrays of a case: q, k, v, dOut, and the i32 extras (keyValid, then token arrays). */
function hostInputs(c: Case) {
  const rng = new Rng(c.seed);
  const h = c.hk * c.group;
  const normal = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const q = normal(c.b * h * c.l * c.d), dOut = normal(c.b * h * c.l * c.d);
  const k = normal(c.b * c.hk * c.s * c.d), v = normal(c.b * c.hk * c.s * c.d);
  const extras: Int32Array[] = [];
  if (c.padding !== "none") {
    const valid = new Int32Array(c.b * c.s);
    for (let bi = 0; bi < c.b; bi++) {
      const n = c.padding === "emptyRow" && bi === 0 ? 0 : 1 + rng.int(c.s);
      for (let j = 0; j < n; j++) valid[bi * c.s + j] = 1;
    }
    extras.push(valid);
  }
  for (const _ of maskVariants[c.variant]!.tokenArrays) {
    // document ids: runs of 1–6 tokens
    const ids = new Int32Array(c.b * c.s);
    for (let bi = 0; bi < c.b; bi++) {
      let doc = 0, left = 1 + rng.int(6);
      for (let j = 0; j < c.s; j++) {
        if (left-- === 0) [doc, left] = [doc + 1, rng.int(6)];
        ids[bi * c.s + j] = doc;
      }
    }
    extras.push(ids);
  }
  return { q, k, v, dOut, extras };
}

function attrsOf(c: Case): AttentionAttrs {
  const variant = maskVariants[c.variant]!;
  return {
    mask: variant.mask,
    scale: 1 / Math.sqrt(c.d),
    queryOffset: c.cached ? Math.max(0, c.s - c.l) : 0,
    hasKeyValid: c.padding !== "none",
    tokenArrays: variant.tokenArrays.length,
    dpStats: c.dpStats,
  };
}

/** Run forward and backward on `device`; backward takes the given out and lse when present. */
async function run(
  device: Device,
  c: Case,
  given?: { out: Float32Array; lse: Float32Array },
): Promise<Record<"out" | "lse" | "stats" | "dq" | "dk" | "dv", Float32Array>> {
  const host = hostInputs(c);
  const h = c.hk * c.group;
  const made: Tensor[] = [];
  const f32 = (values: Float32Array, shape: number[]) => {
    const t = tensor(values, shape, { device });
    made.push(t);
    return t;
  };
  const q = f32(host.q, [c.b, h, c.l, c.d]), dOut = f32(host.dOut, [c.b, h, c.l, c.d]);
  const k = f32(host.k, [c.b, c.hk, c.s, c.d]), v = f32(host.v, [c.b, c.hk, c.s, c.d]);
  const extras = host.extras.map((x) => {
    const t = tensor(x, [c.b, c.s], { device });
    made.push(t);
    return t;
  });
  const attrs = attrsOf(c);
  const [out, lse, stats] = apply(attentionOp, [q, k, v, ...extras], attrs);
  made.push(out!, lse!, ...(stats ? [stats] : []));
  const outIn = given ? f32(given.out, out!.shape.slice()) : out!;
  const lseIn = given ? f32(given.lse, lse!.shape.slice()) : lse!;
  const grads = apply(attentionBackwardOp, [q, k, v, outIn, lseIn, dOut, ...extras], attrs);
  made.push(...grads.map((g) => g!));
  const [o, l, dq, dk, dv] = await Promise.all([out!, lse!, ...grads].map((t) => t!.data()));
  const st = stats ? await stats.data() : [];
  for (const t of made) t.dispose();
  return {
    out: Float32Array.from(o!),
    lse: Float32Array.from(l!),
    stats: Float32Array.from(st),
    dq: Float32Array.from(dq!),
    dk: Float32Array.from(dk!),
    dv: Float32Array.from(dv!),
  };
}

/**
 * Float32 rounding over sums of S (forward) or S + G·L (backward) terms of D products; the
 * reference accumulates in f64. Observed errors are ~10× below these.
 */
function tolerances(c: Case): { forward: Tolerance; backward: Tolerance } {
  return {
    forward: { atol: 1e-6 * Math.sqrt(c.s * c.d), rtol: 1e-5 },
    backward: { atol: 2e-6 * Math.sqrt((c.s + c.group * c.l) * c.d), rtol: 1e-5 },
  };
}

async function check(device: Device, c: Case): Promise<void> {
  const label = (what: string) => `${what} of ${JSON.stringify(c)}`;
  const expected = await run(referenceDevice, c);
  const actual = await run(device, c, { out: expected.out, lse: expected.lse });
  const h = c.hk * c.group;
  const tol = tolerances(c);
  assertClose(actual.out, expected.out, tol.forward, label("out"), [c.b, h, c.l, c.d]);
  assertClose(actual.lse, expected.lse, tol.forward, label("lse"), [c.b, h, c.l]);
  // masses before / on / after the diagonal, logsumexp; (0, 0, 0, −∞) for a fully padded row
  assertEquals(actual.stats.length, c.dpStats ? c.b * h * c.l * 4 : 0, label("stats size"));
  assertClose(actual.stats, expected.stats, tol.forward, label("stats"), [c.b, h, c.l, 4]);
  assertClose(actual.dq, expected.dq, tol.backward, label("dq"), [c.b, h, c.l, c.d]);
  assertClose(actual.dk, expected.dk, tol.backward, label("dk"), [c.b, c.hk, c.s, c.d]);
  assertClose(actual.dv, expected.dv, tol.backward, label("dv"), [c.b, c.hk, c.s, c.d]);
}

for (const strategy of ["texture", "buffer"] as const) {
  const device = webgpuBackends.find((d) => d.strategy === strategy);
  const name = `webgpu:${strategy}`;
  const ignore = device === undefined; // tests/backends.ts has said so once

  Deno.test({
    name: `attention() and its backward on ${name} equal the reference`,
    ignore,
    fn: () =>
      assertProperty(
        fc.asyncProperty(caseArb, (c) => check(device!, c)),
        20,
      ),
  });

  Deno.test({
    name: `attention() on ${name} equals the reference for every mask variant`,
    ignore,
    fn: async () => {
      for (const [variant, { name }] of maskVariants.entries()) {
        const c: Case = {
          b: 2,
          hk: 2,
          group: 2,
          l: 7,
          s: 13,
          d: 6,
          variant,
          padding: "right",
          cached: true,
          dpStats: variant % 2 === 1,
          seed: variant,
        };
        await check(device!, c).catch((e) => {
          throw new Error(`mask ${name}: ${e.message}`);
        });
      }
    },
  });

  Deno.test({
    name:
      `attention() on ${name} equals the reference at L = S = 130, D = 64 (causal, GQA 2, DP statistics)`,
    ignore,
    fn: () =>
      check(device!, {
        b: 1,
        hk: 2,
        group: 2,
        l: 130,
        s: 130,
        d: 64,
        variant: 0,
        padding: "right",
        cached: false,
        dpStats: true,
        seed: 7,
      }),
  });
}
