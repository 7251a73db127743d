// A Linear weight the device keeps only in its matmul layout (prepareLinearWeight) behaves
// exactly like the plain tensor: same products, same values read back, same results in any
// other op (the plain layout is rebuilt on demand).
import { cast } from "../../tensor/ops/elementwise.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { randomNormal, tensor } from "../../tensor/create.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { createWebGpuDevice } from "../../tensor/webgpu/device.ts";
import { assertDeepEqual } from "../assert.ts";

const device = await createWebGpuDevice("texture");

for (const dtype of ["f32", "bf16"] as const) {
  Deno.test({
    name: `prepareLinearWeight() on webgpu:texture changes no result (${dtype})`,
    ignore: !device,
    fn: () =>
      scopeAsync(async () => {
        const d = device!;
        for (const [n, k] of [[7, 5], [300, 130], [129, 64]] as const) {
          const w = cast(randomNormal([n, k], { device: d, seed: n }), dtype);
          const x = randomNormal([3, k], { device: d, seed: 2 });
          const product = await matmul(x, w, { transB: true }).data();
          const values = await w.data();
          d.prepareLinearWeight(w);
          assertDeepEqual(await matmul(x, w, { transB: true }).data(), product);
          assertDeepEqual(await w.data(), values);
          const plain = tensor(values, [n, k], { device: d });
          assertDeepEqual(await add(w, 1).data(), await add(plain, 1).data());
          assertDeepEqual(
            await matmul(w, x, { transB: true }).data(),
            await matmul(plain, x, { transB: true }).data(),
          );
          // w as an untransposed B (a backward product): packed the other way from the
          // rebuilt plain layout, which is then let go and rebuilt again when read
          const y = randomNormal([4, n], { device: d, seed: 3 });
          const viaPlain = await matmul(y, plain).data();
          assertDeepEqual(await matmul(y, w).data(), viaPlain);
          assertDeepEqual(await matmul(y, w).data(), viaPlain);
          assertDeepEqual(await w.data(), values);
          assertDeepEqual(await add(w, 1).data(), await add(plain, 1).data());
        }
      }),
  });
}
