// Conformance over the op registry (DESIGN 2.2, 7): every op on WebGPU (both storage
// strategies) equals the reference on random shapes and dtypes, and every VJP rule matches
// central finite differences in f64. Adding an op to the registry adds its tests here; an op
// without cases in op_cases.ts fails the first test.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import fc from "fast-check";
import type { Device } from "../../tensor/device.ts";
import { isFloat } from "../../tensor/dtype.ts";
import { apply, nonDifferentiable, type OpDef } from "../../tensor/op.ts";
import { reference64Device, referenceDevice } from "../../tensor/reference.ts";
import { opRegistry } from "../../tensor/registry.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { assertClose, type Tolerance } from "../all_close.ts";
import { webgpuBackends } from "../backends.ts";
import { assertProperty } from "../fc.ts";
import { checkVjp } from "../gradcheck.ts";
import { type CaseInput, type OpCase, type OpCases, opCases } from "./op_cases.ts";

const ops = Object.entries(opRegistry) as [string, OpDef][];
const table = opCases as Record<string, OpCases | undefined>;

Deno.test("opRegistry: every op has test cases or names the file that tests it on WebGPU", () => {
  const missing = ops.map(([name]) => name).filter((name) => table[name] === undefined);
  assertDeepEqual(missing, [], `ops without an entry in tests/tensor/op_cases.ts: ${missing}`);
  const stale = Object.keys(table).filter((name) => !(name in opRegistry));
  assertDeepEqual(stale, [], `op_cases.ts lists ops the registry does not have: ${stale}`);
  for (const [name, def] of ops) {
    const entry = table[name]!;
    const needsCases = entry.webgpuTestedIn === undefined || def.vjp !== nonDifferentiable;
    assert(!needsCases || entry.cases, `${name}: needs cases (conformance or VJP check)`);
  }
});

function upload(c: CaseInput, device: Device): Tensor {
  const values = c.dtype === "i32" ? Int32Array.from(c.values) : Float64Array.from(c.values);
  const host = device === reference64Device || c.dtype === "i32"
    ? values
    : Float32Array.from(values);
  return new Tensor(c.shape, c.dtype, device, device.upload(host, c.dtype));
}

interface Result {
  shape: readonly number[];
  dtype: string;
  values: Float32Array | Float64Array | Int32Array;
}

function runCase(def: OpDef, c: OpCase, device: Device): Promise<Result[]> {
  return scopeAsync(async () => {
    const outs = apply(def, c.inputs.map((i) => upload(i, device)), c.attrs, device);
    return await Promise.all(
      outs.map(async (o) => ({ shape: o.shape, dtype: o.dtype, values: await o.data() })),
    );
  });
}

/** f32 rounding grows with the length of the sums an output is made of. */
const tolerance = (reduce: number): Tolerance => ({ atol: 1e-6 * (1 + reduce), rtol: 1e-5 });

const describe = (c: OpCase) =>
  c.inputs.map((i) => `${i.dtype}[${i.shape}]`).join(", ") + ` ${JSON.stringify(c.attrs)}`;

for (const [name, def] of ops) {
  const entry = table[name];
  if (!entry?.cases || entry.webgpuTestedIn) continue;
  const cases = entry.cases;
  for (const backend of webgpuBackends) {
    Deno.test(`${name}() on ${backend.name} equals the reference`, async () => {
      await assertProperty(
        fc.asyncProperty(cases("conformance"), async (c) => {
          const [want, got] = [
            await runCase(def, c, referenceDevice),
            await runCase(def, c, backend),
          ];
          assertEquals(got.length, want.length);
          want.forEach((w, i) => {
            const label = `${name} output ${i} (${describe(c)})`;
            assertDeepEqual([got[i]!.dtype, [...got[i]!.shape]], [w.dtype, [...w.shape]], label);
            assertClose(got[i]!.values, w.values, tolerance(c.reduce), label, w.shape);
          });
        }),
        15,
      );
    });
  }
}

for (const [name, def] of ops) {
  // comparisons, integer ops and the gradient ops themselves have no derivative on purpose
  if (def.vjp === nonDifferentiable) continue;
  const cases = table[name]?.cases;
  Deno.test(`${name}() VJP matches finite differences in f64`, async () => {
    assert(cases, `${name}: no cases in op_cases.ts`);
    await assertProperty(
      fc.asyncProperty(cases("gradcheck"), fc.nat(), async (c, seed) => {
        const inputs = c.inputs.map((i) => upload(i, reference64Device));
        const wrt = c.wrt ?? c.inputs.flatMap((i, k) => (isFloat(i.dtype) ? [k] : []));
        const f = (...xs: Tensor[]) => {
          const all = [...inputs];
          wrt.forEach((k, j) => (all[k] = xs[j]!));
          const outs = apply(def, all, c.attrs, reference64Device);
          const picked = c.outputs ?? outs.flatMap((o, k) => (isFloat(o.dtype) ? [k] : []));
          return picked.map((k) => outs[k]!);
        };
        try {
          await checkVjp(f, wrt.map((k) => inputs[k]!), {
            seed,
            label: `${name} (${describe(c)})`,
          });
        } finally {
          inputs.forEach((t) => t.dispose());
        }
      }),
      30,
    );
  });
}
