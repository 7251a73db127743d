// Rows longer than what one invocation may loop over on lavapipe (65,535 iterations in all,
// then it stops silently): reductions, logsumexp and cross-entropy over a vocabulary-sized
// last axis (Qwen2.5's 151,936, the bundled model's 37,778) must equal the reference.
import { crossEntropy } from "../../tensor/ops/cross_entropy.ts";
import { logsumexp, max, sum } from "../../tensor/ops/reduce.ts";
import { tensor } from "../../tensor/create.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import type { Device } from "../../tensor/device.ts";
import { assertClose } from "../all_close.ts";
import { webgpuBackends } from "../backends.ts";

for (const device of webgpuBackends) {
  Deno.test(`sum/max/logsumexp/crossEntropy over rows of 37,778 and 151,936 on ${device.name}`, () =>
    scopeAsync(async () => {
      for (const [rows, cols] of [[6, 37778], [2, 151936], [3, 20002]] as const) {
        const values = new Float32Array(rows * cols).map((_, i) => Math.sin(i * 0.37) * 3);
        const targets = Int32Array.from({ length: rows }, (_, r) => (r * 7919) % cols);
        const on = (d: Device) => {
          const x = tensor(values, [rows, cols], { device: d });
          const t = tensor(targets, [rows], { device: d, dtype: "i32" });
          return [sum(x, -1), max(x, -1), logsumexp(x, -1), crossEntropy(x, t)] as Tensor[];
        };
        const want = on(referenceDevice), got = on(device);
        for (let i = 0; i < want.length; i++) {
          assertClose(await got[i]!.data(), await want[i]!.data(), {
            atol: 1e-6 * Math.sqrt(cols),
            rtol: 1e-5,
          }, `op ${i} [${rows}, ${cols}]`);
        }
      }
    }));
}
