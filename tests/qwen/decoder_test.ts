// The decoder's inference-only memory savings change no value: the MLP in row slices equals
// the MLP over all rows bit for bit, on every backend.
import { mlpByRows } from "../../qwen/decoder.ts";
import { expertMlp } from "../../qwen/moe.ts";
import { randomNormal } from "../../tensor/create.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";

for (const device of backends) {
  Deno.test(`mlpByRows() equals expertMlp() bit for bit at 1100 and 1700 tokens on ${device.name}`, async () => {
    await scopeAsync(async () => {
      const [hidden, inter] = [48, 136];
      const w = (shape: number[], seed: number) =>
        randomNormal(shape, { seed, device, std: 0.2, dtype: "bf16" });
      const mlp = {
        gate_proj: { weight: w([inter, hidden], 1) },
        up_proj: { weight: w([inter, hidden], 2) },
        down_proj: { weight: w([hidden, inter], 3) },
      };
      device.prepareLinearWeight?.(mlp.gate_proj.weight); // one weight packed at load, as models are
      for (const t of [1100, 1700]) {
        const u = randomNormal([1, t, hidden], { seed: t, device });
        const sliced = await mlpByRows(u, mlp).data();
        const whole = await expertMlp(u, mlp).data();
        let differ = 0;
        for (let i = 0; i < whole.length; i++) if (sliced[i] !== whole[i]) differ++;
        assertEquals(differ, 0, `${differ} of ${whole.length} values differ at ${t} tokens`);
      }
    });
  });
}
