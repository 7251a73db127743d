// Laws of fused attention on every backend: bidirectional attention (no RoPE) is equivariant
// to permutations, causal attention never looks ahead, and a row with no allowed key is 0.
// (Kernel coverage of the WebGPU attention lives in attention_webgpu_test.ts.)
import fc from "fast-check";
import { vjp } from "../../autograd/grad.ts";
import { bidirectional, causal } from "../../nn/masks.ts";
import type { Device } from "../../tensor/device.ts";
import { tensor } from "../../tensor/create.ts";
import { attention } from "../../tensor/ops/attention.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assertClose } from "../all_close.ts";
import { floatValues } from "../arbitraries.ts";
import { assert, assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

interface Sizes {
  b: number;
  h: number;
  hk: number;
  l: number;
  s: number;
  d: number;
}

/** Sizes (GQA when h > hk) with q, k, v values. */
const inputs = (maxL = 6, maxS = 9, square = false) =>
  fc.record({
    b: fc.integer({ min: 1, max: 2 }),
    hk: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 2 }),
    l: fc.integer({ min: 1, max: maxL }),
    s: fc.integer({ min: 1, max: maxS }),
    d: fc.integer({ min: 1, max: 8 }),
  }).chain(({ b, hk, group, l, s, d }) => {
    const z: Sizes = { b, h: hk * group, hk, l, s: square ? l : s, d };
    return fc.tuple(
      floatValues(b * z.h * l * d),
      floatValues(b * hk * z.s * d),
      floatValues(b * hk * z.s * d),
    ).map(([q, k, v]) => ({ z, q, k, v }));
  });

/** Reorder axis 2 of a [A, B, N, D] array: out[.., i, ..] = x[.., perm[i], ..]. */
function permuteAxis2(
  x: readonly number[],
  outer: number,
  n: number,
  d: number,
  perm: readonly number[],
) {
  const out = new Array<number>(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < d; c++) out[(o * n + i) * d + c] = x[(o * n + perm[i]!) * d + c]!;
    }
  }
  return out;
}

function qkv(
  device: Device,
  z: Sizes,
  q: readonly number[],
  k: readonly number[],
  v: readonly number[],
) {
  return [
    tensor(q, [z.b, z.h, z.l, z.d], { device }),
    tensor(k, [z.b, z.hk, z.s, z.d], { device }),
    tensor(v, [z.b, z.hk, z.s, z.d], { device }),
  ] as const;
}

const tol = { atol: 2e-5, rtol: 1e-4 };

for (const device of backends) {
  Deno.test(`attention() bidirectional is invariant to permuting keys with values on ${device.name}`, async () => {
    const cases = inputs().chain((x) =>
      fc.shuffledSubarray([...Array(x.z.s).keys()], { minLength: x.z.s, maxLength: x.z.s })
        .map((perm) => ({ ...x, perm }))
    );
    await assertProperty(
      fc.asyncProperty(cases, ({ z, q, k, v, perm }) =>
        scopeAsync(async () => {
          const mask = bidirectional.mask;
          const want = await attention(...qkv(device, z, q, k, v), { mask }).data();
          const pk = permuteAxis2(k, z.b * z.hk, z.s, z.d, perm);
          const pv = permuteAxis2(v, z.b * z.hk, z.s, z.d, perm);
          const got = await attention(...qkv(device, z, q, pk, pv), { mask }).data();
          assertClose(got, want, tol, "output after permuting keys and values");
        })),
      10,
    );
  });

  Deno.test(`attention() bidirectional permutes outputs with its queries on ${device.name}`, async () => {
    const cases = inputs().chain((x) =>
      fc.shuffledSubarray([...Array(x.z.l).keys()], { minLength: x.z.l, maxLength: x.z.l })
        .map((perm) => ({ ...x, perm }))
    );
    await assertProperty(
      fc.asyncProperty(cases, ({ z, q, k, v, perm }) =>
        scopeAsync(async () => {
          const mask = bidirectional.mask;
          const out = Array.from(await attention(...qkv(device, z, q, k, v), { mask }).data());
          const pq = permuteAxis2(q, z.b * z.h, z.l, z.d, perm);
          const got = await attention(...qkv(device, z, pq, k, v), { mask }).data();
          assertClose(got, permuteAxis2(out, z.b * z.h, z.l, z.d, perm), tol, "permuted output");
        })),
      10,
    );
  });

  Deno.test(`attention() causal row i ignores keys and values after i on ${device.name}`, async () => {
    const cases = inputs(8, 8, true).chain((x) =>
      fc.tuple(fc.nat(x.z.l - 1), floatValues(x.k.length), floatValues(x.v.length))
        .map(([i, k2, v2]) => ({ ...x, i, k2, v2 }))
    );
    await assertProperty(
      fc.asyncProperty(cases, ({ z, q, k, v, i, k2, v2 }) =>
        scopeAsync(async () => {
          // keys/values after position i replaced by unrelated ones
          const later = (a: readonly number[], b: readonly number[]) =>
            a.map((x, e) => (Math.floor(e / z.d) % z.s > i ? b[e]! : x));
          const mask = causal.mask;
          const want = await attention(...qkv(device, z, q, k, v), { mask }).data();
          const got = await attention(...qkv(device, z, q, later(k, k2), later(v, v2)), { mask })
            .data();
          const rowsUpToI = (x: ArrayLike<number>) =>
            Array.from(x).filter((_, e) => Math.floor(e / z.d) % z.l <= i);
          assertClose(rowsUpToI(got), rowsUpToI(want), { atol: 1e-6, rtol: 1e-6 }, `rows ≤ ${i}`);
        })),
      10,
    );
  });

  Deno.test(`attention() gives 0, not NaN, for a row with no allowed key on ${device.name}`, async () => {
    const cases = inputs(6, 6, true).chain((x) =>
      fc.array(fc.boolean(), { minLength: x.z.b * x.z.s, maxLength: x.z.b * x.z.s })
        .map((valid) => ({ ...x, valid }))
    );
    await assertProperty(
      fc.asyncProperty(cases, ({ z, q, k, v, valid }) =>
        scopeAsync(async () => {
          const [tq, tk, tv] = qkv(device, z, q, k, v);
          const keyValid = tensor(Int32Array.from(valid, Number), [z.b, z.s], { device });
          const opts = { mask: causal.mask, keyValid };
          const [out, back] = vjp(
            (q: Tensor, k: Tensor, v: Tensor) => attention(q, k, v, opts),
            tq,
            tk,
            tv,
          );
          const grads = back(out);
          const values = await out.data();
          for (let e = 0; e < values.length; e++) {
            const row = Math.floor(e / z.d) % z.l, bi = Math.floor(e / (z.d * z.l * z.h));
            // causal: row may attend keys 0..row; masked when every one of them is padding
            const masked = valid.slice(bi * z.s, bi * z.s + row + 1).every((ok) => !ok);
            assert(Number.isFinite(values[e]!), `output ${e} is ${values[e]}`);
            if (masked) assertEquals(values[e], 0, `fully masked row ${row}, batch ${bi}`);
          }
          for (const g of grads) {
            assert((await g.data()).every(Number.isFinite), "gradient has a non-finite value");
          }
        })),
      10,
    );
  });
}
