// Laws of softmax on every backend: rows are distributions, and a per-row shift changes nothing.
import fc from "fast-check";
import { tensor } from "../../tensor/create.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { softmax } from "../../tensor/ops/softmax.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { assertClose } from "../all_close.ts";
import { floatValues, shapedValues } from "../arbitraries.ts";
import { assert } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

const rows = shapedValues({ minRank: 1, maxRank: 3, maxSize: 160 }, -10, 10);

for (const device of backends) {
  Deno.test(`softmax() rows sum to 1 on ${device.name}`, async () => {
    await assertProperty(
      fc.asyncProperty(rows, ({ shape, values }) =>
        scopeAsync(async () => {
          const y = await softmax(tensor(values, shape, { device })).data();
          const cols = shape[shape.length - 1]!;
          const sums = [];
          for (let r = 0; r < y.length / cols; r++) {
            let s = 0;
            for (let c = 0; c < cols; c++) {
              const p = y[r * cols + c]!;
              assert(p >= 0 && p <= 1, `probability ${p} outside [0, 1]`);
              s += p;
            }
            sums.push(s);
          }
          assertClose(sums, sums.map(() => 1), { atol: 1e-6 * (1 + cols), rtol: 0 }, "row sums");
        })),
      15,
    );
  });

  Deno.test(`softmax() is invariant to a per-row constant on ${device.name}`, async () => {
    const shifted = rows.chain((x) =>
      floatValues(x.values.length / x.shape[x.shape.length - 1]!, -20, 20)
        .map((c) => ({ ...x, c }))
    );
    await assertProperty(
      fc.asyncProperty(shifted, ({ shape, values, c }) =>
        scopeAsync(async () => {
          const x = tensor(values, shape, { device });
          const shift = tensor(c, [...shape.slice(0, -1), 1], { device });
          const want = await softmax(x).data();
          const got = await softmax(add(x, shift)).data();
          // x + c rounds to f32: ~|x + c|·2⁻²⁴ in the exponent
          assertClose(got, want, { atol: 1e-5, rtol: 1e-4 }, "softmax(x + c) vs softmax(x)", shape);
        })),
      15,
    );
  });
}
