// The fused AdamW op against AdamW composed from elementwise ops, on every backend, and its
// input checks.
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { type AdamWAttrs, adamwStep } from "../../tensor/ops/adamw.ts";
import { add, cast, div, mul, sqrt, sub } from "../../tensor/ops/elementwise.ts";
import { Rng } from "../../tensor/random.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assertClose } from "../all_close.ts";
import { assertThrows } from "../assert.ts";
import { backends } from "../backends.ts";

type Hyper = Omit<AdamWAttrs, "hasGradScale">;

/** The textbook step, one elementwise op at a time: p(1 − lr·λ) − lr·m̂/(√v̂ + ε). */
function composed(
  [p, g, m, v]: Tensor[],
  h: Hyper,
  gradScale?: Tensor,
): [Tensor, Tensor, Tensor] {
  const gs = gradScale ? mul(g!, gradScale) : g!;
  const m2 = add(mul(m!, h.beta1), mul(gs, 1 - h.beta1));
  const v2 = add(mul(v!, h.beta2), mul(mul(gs, gs), 1 - h.beta2));
  const mHat = div(m2, 1 - h.beta1 ** h.step), vHat = div(v2, 1 - h.beta2 ** h.step);
  const update = div(mul(mHat, h.lr), add(sqrt(vHat), h.eps));
  return [sub(mul(p!, 1 - h.lr * h.weightDecay), update), m2, v2];
}

function randomTensor(shape: number[], rng: Rng, device: Device): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from({ length: n }, () => rng.normal()), shape, { device });
}

const tol = { atol: 1e-6, rtol: 2e-5 };

for (const device of backends) {
  for (const weightDecay of [0, 0.1]) {
    for (const scaled of [false, true]) {
      const variant = `weight decay ${weightDecay}, ${scaled ? "with" : "without"} grad scale`;
      Deno.test(`adamwStep() equals the composed AdamW over 3 steps, ${variant} (${device.name})`, async () => {
        await scopeAsync(async () => {
          const rng = new Rng(weightDecay * 10 + (scaled ? 1 : 0));
          // 481 elements: the last texel is partly outside the tensor
          const shape = [37, 13];
          const zeros = () => tensor(new Float32Array(481), shape, { device });
          let fused = [randomTensor(shape, rng, device), zeros(), zeros()];
          let reference = fused;
          for (let step = 1; step <= 3; step++) {
            const g = randomTensor(shape, rng, device);
            const scale = scaled ? tensor([0.3 + step / 10], [1], { device }) : undefined;
            const h: Hyper = { lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay, step };
            const [p, m, v] = fused;
            fused = adamwStep(p!, g, m!, v!, h, scale);
            const [rp, rm, rv] = reference;
            reference = composed([rp!, g, rm!, rv!], h, scale);
            for (const [k, name] of ["p", "m", "v"].entries()) {
              assertClose(
                await fused[k]!.data(),
                await reference[k]!.data(),
                tol,
                `${name} after step ${step}`,
                shape,
              );
            }
          }
        });
      });
    }
  }
}

Deno.test("adamwStep() rejects non-f32 tensors, shape mismatches and a bad grad scale", () => {
  const device = referenceDevice;
  const t = (shape: number[]) =>
    tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, { device });
  const h: Hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
  const p = t([2, 3]);
  assertThrows(
    () => adamwStep(cast(p, "bf16"), p, p, p, h),
    {
      message:
        "adamw: p must be f32 (trainable parameters and their state are f32), got bf16 [2,3]",
    },
  );
  assertThrows(() => adamwStep(p, t([3, 2]), p, p, h), {
    message: "adamw: g [3,2] differs from p [2,3]",
  });
  assertThrows(() => adamwStep(p, p, p, p, h, t([2])), {
    message: "adamw: gradScale must have one element, got [2]",
  });
  assertThrows(
    () => adamwStep(p, p, p, p, { ...h, step: 0 }),
    /adamw: step must be an integer ≥ 1/,
  );
});
