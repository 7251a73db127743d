// Laws of the layout ops on every backend (exact: they only move values), and their errors.
import fc from "fast-check";
import { tensor } from "../../tensor/create.ts";
import { reshape, transpose } from "../../tensor/ops/layout.ts";
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
