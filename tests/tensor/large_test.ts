// Tensors larger than one binding (128 MiB on lavapipe) or one texture row: a Qwen2.5-0.5B
// embedding table, bf16 [151936, 896] (272 MB), must gather rows and serve as the LM head.
import { assertEquals } from "../assert.ts";
import { bf16BitsToF32, f32ToBf16Bits } from "../../tensor/dtype.ts";
import { tensor } from "../../tensor/create.ts";
import { gather } from "../../tensor/ops/gather.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { createWebGpuDevice } from "../../tensor/webgpu/device.ts";

const V = 151936, H = 896;
const ids = [0, 1, 75000, 100000, V - 1];

/** Row r, column c of the table: distinct per row, exactly representable pattern per column. */
function table(): Uint16Array {
  const bits = new Uint16Array(V * H);
  for (let r = 0; r < V; r++) {
    const base = ((r * 7919) % 997) / 64 - 7;
    for (let c = 0; c < H; c++) bits[r * H + c] = f32ToBf16Bits(base + (c % 16) / 16);
  }
  return bits;
}

for (const strategy of ["texture", "buffer"] as const) {
  Deno.test(`a bf16 [151936, 896] table gathers and multiplies on webgpu:${strategy}`, async () => {
    const device = await createWebGpuDevice(strategy);
    if (!device) {
      console.warn("large_test: no WebGPU adapter; skipped");
      return;
    }
    const bits = table();
    const t = tensor(bits, [V, H], { dtype: "bf16", device });
    const rows = await gather(t, tensor(Int32Array.from(ids), [ids.length], { device })).data();
    ids.forEach((r, i) => {
      for (const c of [0, 1, 447, H - 1]) {
        assertEquals(rows[i * H + c], bf16BitsToF32(bits[r * H + c]!), `row ${r} col ${c}`);
      }
    });
    const x = new Float32Array(H).map((_, c) => ((c % 5) - 2) / 8);
    const logits = await matmul(tensor(x, [1, H], { device }), t, { transB: true }).data();
    assertEquals(logits.length, V);
    for (const r of ids) {
      let expected = 0;
      for (let c = 0; c < H; c++) expected += x[c]! * bf16BitsToF32(bits[r * H + c]!);
      const err = Math.abs(logits[r]! - expected);
      if (err > 1e-4 * (1 + Math.abs(expected))) {
        throw new Error(`logit ${r}: ${logits[r]} vs ${expected}`);
      }
    }
    t.dispose();
    device.trimPool();
  });
}
