// Laws of the layout ops on every backend (exact: they only move values), and their errors.
import fc from "fast-check";
import { tensor } from "../../tensor/create.ts";
import { pad, permute, reshape, slice, transpose } from "../../tensor/ops/layout.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { shapedValues } from "../arbitraries.ts";
import { assertDeepEqual, assertThrows } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

for (const device of backends) {
  Deno.test(`transpose() twice is the identity on ${device.name}`, async () => {
    const cases = shapedValues({ minRank: 2, maxRank: 4 }).chain((x) =>
      fc.tuple(fc.nat(x.shape.length - 1), fc.nat(x.shape.length - 1)).map(([a, b]) => ({
        ...x,
        a,
        b,
      }))
    );
    await assertProperty(
      fc.asyncProperty(cases, ({ shape, values, a, b }) =>
        scopeAsync(async () => {
          const x = tensor(values, shape, { device });
          const once = transpose(x, a, b);
          const swapped = [...shape];
          [swapped[a], swapped[b]] = [shape[b]!, shape[a]!];
          assertDeepEqual([...once.shape], swapped);
          const twice = transpose(once, a, b);
          assertDeepEqual([...twice.shape], shape);
          assertDeepEqual(Array.from(await twice.data()), Array.from(Float32Array.from(values)));
        })),
      15,
    );
  });

  Deno.test(`reshape() round-trips on ${device.name}`, async () => {
    const cases = shapedValues().chain((x) =>
      fc.shuffledSubarray(x.shape, { minLength: x.shape.length, maxLength: x.shape.length })
        .map((target) => ({ ...x, target: [1, ...target] }))
    );
    await assertProperty(
      fc.asyncProperty(cases, ({ shape, values, target }) =>
        scopeAsync(async () => {
          const x = tensor(values, shape, { device });
          const there = reshape(x, target);
          assertDeepEqual([...there.shape], target);
          const back = reshape(reshape(there, [-1]), shape);
          assertDeepEqual([...back.shape], shape);
          assertDeepEqual(Array.from(await back.data()), Array.from(Float32Array.from(values)));
        })),
      15,
    );
  });
}

Deno.test("reshape() to a different size throws naming both shapes", () => {
  const x = tensor(new Float32Array(6), [2, 3]);
  assertThrows(() => reshape(x, [4, 2]), { message: "reshape: cannot reshape [2,3] to [4,2]" });
  assertThrows(() => reshape(x, [4, -1]), { message: "reshape: cannot reshape [2,3] to [4,-1]" });
  x.dispose();
});

/** Copies whose last axis is whole texels take the one-texel-per-lane kernel on WebGPU. */
for (const device of backends) {
  Deno.test(`texel-aligned permute, slice and pad equal the reference on ${device.name}`, async () => {
    const cases = fc.record({
      b: fc.integer({ min: 1, max: 3 }),
      t: fc.integer({ min: 1, max: 5 }),
      h: fc.integer({ min: 1, max: 4 }),
      d4: fc.integer({ min: 1, max: 3 }),
      start: fc.integer({ min: 0, max: 1 }),
      seed: fc.nat(),
    });
    await assertProperty(
      fc.asyncProperty(cases, ({ b, t, h, d4, start, seed }) =>
        scopeAsync(async () => {
          const d = 4 * d4;
          const shape = [b, t, h, d];
          const values = Float32Array.from(
            { length: b * t * h * d },
            (_, i) => (i * 7 + seed) % 101,
          );
          const on = (dev: typeof device) => tensor(values, shape, { device: dev });
          const ops = (x: ReturnType<typeof on>) => [
            permute(x, [0, 2, 1, 3]),
            slice(x, [0, Math.min(start, t - 1), 0, 4 * Math.min(start, d4 - 1)]),
            pad(x, [0, 1, 0, 4], [1, 0, 0, 0]),
          ];
          const want = await Promise.all(ops(on(referenceDevice)).map((y) => y.data()));
          const got = await Promise.all(ops(on(device)).map((y) => y.data()));
          got.forEach((g, i) => assertDeepEqual(Array.from(g), Array.from(want[i]!)));
        })),
      15,
    );
  });
}
