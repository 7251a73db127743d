// Creation: seeded random tensors are reproducible and identical on every backend; ranges and
// constants; bf16 storage rounds to the nearest bf16 (ties to even).
import fc from "fast-check";
import {
  arange,
  full,
  ones,
  randomNormal,
  randomUniform,
  tensor,
  zeros,
} from "../../tensor/create.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { floatValues, shape } from "../arbitraries.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

const [first, ...others] = backends;

Deno.test("randomNormal() and randomUniform() with a seed are reproducible and equal on every backend", async () => {
  const cases = fc.record({ shape: shape({ maxSize: 200 }), seed: fc.nat(), other: fc.nat() })
    .filter(({ seed, other }) => seed !== other);
  await assertProperty(
    fc.asyncProperty(cases, ({ shape, seed, other }) =>
      scopeAsync(async () => {
        const normal = Array.from(await randomNormal(shape, { seed, device: first }).data());
        const uniform = Array.from(
          await randomUniform(shape, { seed, device: first, low: -3, high: 5 }).data(),
        );
        assertDeepEqual(
          Array.from(await randomNormal(shape, { seed, device: first }).data()),
          normal,
        );
        assert(uniform.every((u) => u >= -3 && u < 5), "uniform sample outside [low, high)");
        if (normal.length > 1) {
          const again = Array.from(
            await randomNormal(shape, { seed: other, device: first }).data(),
          );
          assert(
            again.some((x, i) => x !== normal[i]),
            `seeds ${seed} and ${other} gave the same samples`,
          );
        }
        for (const device of others) {
          assertDeepEqual(
            Array.from(await randomNormal(shape, { seed, device }).data()),
            normal,
            device.name,
          );
          const u = Array.from(
            await randomUniform(shape, { seed, device, low: -3, high: 5 }).data(),
          );
          assertDeepEqual(u, uniform, device.name);
        }
      })),
    15,
  );
});

Deno.test("randomNormal() has the requested mean and standard deviation", async () => {
  const n = 8192;
  const x = Array.from(await randomNormal([n], { seed: 7, mean: 2, std: 3 }).data());
  const mean = x.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  // 5 standard errors
  assert(Math.abs(mean - 2) < 5 * 3 / Math.sqrt(n), `mean ${mean}`);
  assert(Math.abs(std - 3) < 5 * 3 / Math.sqrt(2 * n), `std ${std}`);
});

for (const device of backends) {
  Deno.test(`arange(), full(), zeros() and ones() give their values on ${device.name}`, async () => {
    await scopeAsync(async () => {
      const r = arange(5, undefined, 1, { device });
      assertEquals(r.dtype, "i32");
      assertDeepEqual(Array.from(await r.data()), [0, 1, 2, 3, 4]);
      assertDeepEqual(Array.from(await arange(2, 9, 3, { device }).data()), [2, 5, 8]);
      const f = arange(0, 1, 0.25, { device, dtype: "f32" });
      assertEquals(f.dtype, "f32");
      assertDeepEqual(Array.from(await f.data()), [0, 0.25, 0.5, 0.75]);
      assertDeepEqual([...arange(3, 3, 1, { device }).shape], [0]);
      const c = full([2, 3], -1.5, { device });
      assertDeepEqual([[...c.shape], c.dtype], [[2, 3], "f32"]);
      assertDeepEqual(Array.from(await c.data()), new Array(6).fill(-1.5));
      const i = full([3], 7, { device, dtype: "i32" });
      assertDeepEqual([i.dtype, Array.from(await i.data())], ["i32", [7, 7, 7]]);
      assertDeepEqual(Array.from(await zeros([2, 2], { device }).data()), [0, 0, 0, 0]);
      assertDeepEqual(Array.from(await ones([1, 3], { device }).data()), [1, 1, 1]);
      const scalar = full([], 4, { device });
      assertEquals(await scalar.item(), 4);
    });
  });

  Deno.test(`a bf16 tensor reads back its values rounded to the nearest bf16 on ${device.name}`, async () => {
    const f32 = new Float32Array(1), bits = new Uint32Array(f32.buffer);
    const u32 = (x: number) => ((f32[0] = x), bits[0]!);
    const fromBits = (b: number) => ((bits[0] = b >>> 0), f32[0]!);
    const cases = fc.oneof(
      floatValues(17, -1e6, 1e6),
      floatValues(9, -4, 4),
      // exact ties between two bf16 values: ties go to the even one
      fc.array(fc.integer({ min: 0x3f80, max: 0x47ff }), { minLength: 5, maxLength: 5 })
        .map((hs) => hs.map((h) => fromBits((h << 16) | 0x8000))),
    );
    await assertProperty(
      fc.asyncProperty(cases, (values) =>
        scopeAsync(async () => {
          const t = tensor(values, [values.length], { dtype: "bf16", device });
          assertEquals(t.dtype, "bf16");
          const got = await t.data();
          values.forEach((x, i) => {
            const r = got[i]!, xr = Math.fround(x);
            assertEquals(u32(r) & 0xffff, 0, `${r} is not a bf16 value`);
            const below = fromBits(u32(xr) & 0xffff0000),
              above = fromBits((u32(xr) & 0xffff0000) + 0x10000);
            const [dLow, dHigh] = [Math.abs(xr - below), Math.abs(above - xr)];
            const nearest = dLow < dHigh
              ? below
              : dHigh < dLow
              ? above
              : ((u32(below) >>> 16) & 1) === 0
              ? below
              : above;
            assertEquals(r, nearest, `bf16(${xr})`);
          });
        })),
      15,
    );
  });
}
