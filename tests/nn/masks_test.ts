// Every mask variant (and random mask expressions): the WGSL the fused attention kernel
// compiles equals the reference's evaluation of the same expression. Adding a variant to
// `maskVariants` adds its test here.
import fc from "fast-check";
import { maskVariants, parseMaskVariant } from "../../nn/masks.ts";
import type { Device } from "../../tensor/device.ts";
import { tensor } from "../../tensor/create.ts";
import type { MaskBool } from "../../tensor/mask.ts";
import { attention } from "../../tensor/ops/attention.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { assertClose } from "../all_close.ts";
import { maskExpression, seededValues } from "../arbitraries.ts";
import { assertEquals } from "../assert.ts";
import { webgpuBackends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

const [b, h, hk, l, d] = [2, 2, 1, 7, 4];

/** Attention with `mask` on `device`: keys partly padded, one document-id array. */
function run(device: Device, mask: MaskBool, tokenArrays: number, seed: number) {
  return scopeAsync(async () => {
    const q = tensor(seededValues(b * h * l * d, seed), [b, h, l, d], { device });
    const k = tensor(seededValues(b * hk * l * d, seed + 1), [b, hk, l, d], { device });
    const v = tensor(seededValues(b * hk * l * d, seed + 2), [b, hk, l, d], { device });
    const keyValid = tensor(
      Int32Array.from({ length: b * l }, (_, i) => (i === 3 || i === 12 ? 0 : 1)),
      [b, l],
      { device },
    );
    const documentIds = tensor(
      Int32Array.from([0, 0, 0, 1, 1, 2, 2, 0, 1, 1, 1, 1, 2, 2]),
      [b, l],
      { device },
    );
    const tokens = tokenArrays ? [documentIds] : [];
    return Array.from(await attention(q, k, v, { mask, keyValid, tokens }).data());
  });
}

for (const variant of maskVariants) {
  for (const device of webgpuBackends) {
    Deno.test(`maskVariants ${variant.name}: compiled on ${device.name} equals the evaluated reference`, async () => {
      const want = await run(referenceDevice, variant.mask, variant.tokenArrays.length, 1);
      const got = await run(device, variant.mask, variant.tokenArrays.length, 1);
      assertClose(got, want, { atol: 2e-5, rtol: 1e-4 }, variant.name, [b, h, l, d]);
    });
  }
  Deno.test(`parseMaskVariant() reads back ${variant.name}`, () => {
    assertEquals(String(parseMaskVariant(variant.name).mask), String(variant.mask));
  });
}

for (const device of webgpuBackends) {
  Deno.test(`a random mask expression compiled on ${device.name} equals its evaluation`, async () => {
    await assertProperty(
      fc.asyncProperty(maskExpression(), async (mask) => {
        const want = await run(referenceDevice, mask, 1, 3);
        const got = await run(device, mask, 1, 3);
        assertClose(got, want, { atol: 2e-5, rtol: 1e-4 }, `mask ${mask}`, [b, h, l, d]);
      }),
      8,
    );
  });
}
