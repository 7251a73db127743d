// matmul's algebra on every backend, and its shape errors. (Kernel coverage of the WebGPU
// matmul lives in matmul_webgpu_test.ts; its VJP is checked in registry_test.ts.)
import fc from "fast-check";
import { tensor } from "../../tensor/create.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { assertClose } from "../all_close.ts";
import { broadcastablePair, dim, floatValues } from "../arbitraries.ts";
import { assertThrows } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

for (const device of backends) {
  Deno.test(`matmul() distributes over addition on ${device.name}`, async () => {
    const cases = fc.record({
      batch: broadcastablePair({ maxRank: 2, maxSize: 6, maxDim: 3 }),
      m: dim(7),
      k: dim(7),
      n: dim(7),
      transA: fc.boolean(),
      transB: fc.boolean(),
    }).filter(({ m, k, n }) => m * k + k * n <= 2048).chain((c) => {
      const [ba, bb] = c.batch;
      const sa = [...ba, ...(c.transA ? [c.k, c.m] : [c.m, c.k])];
      const sb = [...bb, ...(c.transB ? [c.n, c.k] : [c.k, c.n])];
      return fc.tuple(floatValues(sizeOf(sa)), floatValues(sizeOf(sb)), floatValues(sizeOf(sb)))
        .map(([a, b, cc]) => ({ ...c, sa, sb, a, b, c: cc }));
    });
    await assertProperty(
      fc.asyncProperty(cases, (t) =>
        scopeAsync(async () => {
          const opts = { transA: t.transA, transB: t.transB };
          const a = tensor(t.a, t.sa, { device });
          const b = tensor(t.b, t.sb, { device }), c = tensor(t.c, t.sb, { device });
          const left = matmul(a, add(b, c), opts);
          const right = add(matmul(a, b, opts), matmul(a, c, opts));
          const tol = { atol: 1e-5 * (1 + t.k), rtol: 1e-5 };
          assertClose(
            await left.data(),
            await right.data(),
            tol,
            "a(b + c) vs ab + ac",
            left.shape,
          );
        })),
      15,
    );
  });
}

Deno.test("matmul() with different inner dimensions throws naming both shapes", () => {
  const a = tensor(new Float32Array(6), [2, 3]), b = tensor(new Float32Array(20), [4, 5]);
  assertThrows(() => matmul(a, b), { message: "matmul: inner dimensions differ: [2,3] @ [4,5]" });
  assertThrows(() => matmul(a, b, { transB: true }), {
    message: "matmul: inner dimensions differ: [2,3] @ [4,5]ᵀ",
  });
  a.dispose();
  b.dispose();
});

Deno.test("matmul() with batch dims that do not broadcast throws naming both shapes", () => {
  const a = tensor(new Float32Array(12), [2, 2, 3]), b = tensor(new Float32Array(27), [3, 3, 3]);
  assertThrows(() => matmul(a, b), { message: /^matmul: .*\[2\].*\[3\]/ });
  a.dispose();
  b.dispose();
});
