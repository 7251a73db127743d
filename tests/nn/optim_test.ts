// AdamW, gradient clipping and the learning-rate schedules against hand-computed values.
import { adamw, clipByGlobalNorm, clipFactor, globalNorm } from "../../nn/optim.ts";
import { constantSchedule, warmupCosine, warmupLinear } from "../../nn/schedules.ts";
import { tensor } from "../../tensor/create.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assertClose } from "../all_close.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { backends } from "../backends.ts";

const tol = { atol: 1e-6, rtol: 1e-5 };

/** One scalar AdamW step written out the way the paper states it. */
function adamwByHand(
  p: number,
  g: number,
  m: number,
  v: number,
  t: number,
  o: { lr: number; b1: number; b2: number; eps: number; wd: number },
): [number, number, number] {
  const m2 = o.b1 * m + (1 - o.b1) * g;
  const v2 = o.b2 * v + (1 - o.b2) * g * g;
  const mHat = m2 / (1 - o.b1 ** t), vHat = v2 / (1 - o.b2 ** t);
  return [p * (1 - o.lr * o.wd) - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps), m2, v2];
}

for (const device of backends) {
  Deno.test(`adamw.update() matches a hand-computed step (${device.kind})`, async () => {
    const h = { lr: 0.1, b1: 0.8, b2: 0.9, eps: 1e-3, wd: 0.5 };
    const opt = adamw({ lr: h.lr, beta1: h.b1, beta2: h.b2, eps: h.eps, weightDecay: h.wd });
    const w0 = [0.5, -1, 2, 0.25], b0 = [1, -2];
    const gw = [[0.1, -0.2, 0.3, 0], [0.5, 0.5, -1, 2]];
    const gb = [[1, -1], [0.25, 3]];
    const t = (x: number[], shape: number[]) => tensor(Float32Array.from(x), shape, { device });
    let params: { w: Tensor; b: Tensor } = { w: t(w0, [2, 2]), b: t(b0, [2]) };
    const original = params;
    let state = opt.init(params);
    const ew = w0.map((p) => [p, 0, 0]), eb = b0.map((p) => [p, 0, 0]);
    for (let step = 0; step < 2; step++) {
      [params, state] = opt.update(
        { w: t(gw[step]!, [2, 2]), b: t(gb[step]!, [2]) },
        state,
        params,
      );
      // matrices decay, vectors (biases, norms) do not
      ew.forEach((s, i) => ew[i] = adamwByHand(s[0]!, gw[step]![i]!, s[1]!, s[2]!, step + 1, h));
      eb.forEach((s, i) =>
        eb[i] = adamwByHand(s[0]!, gb[step]![i]!, s[1]!, s[2]!, step + 1, { ...h, wd: 0 })
      );
    }
    assertEquals(state.step, 2);
    assertClose(await params.w.data(), ew.map((s) => s[0]!), tol, "w");
    assertClose(await params.b.data(), eb.map((s) => s[0]!), tol, "b");
    const m = state.m as { w: Tensor }, v = state.v as { w: Tensor };
    assertClose(await m.w.data(), ew.map((s) => s[1]!), tol, "m");
    assertClose(await v.w.data(), ew.map((s) => s[2]!), tol, "v");
    // pure: the inputs are unchanged
    assertClose(await original.w.data(), w0, { atol: 0, rtol: 0 }, "original w");
  });
}

Deno.test("adamw() takes the learning rate from a schedule by step", async () => {
  const device = referenceDevice;
  const opt = adamw({ lr: (step) => [1, 0][step]!, weightDecay: 0 });
  let p = { x: tensor([3], [1], { device }) };
  let state = opt.init(p);
  [p, state] = opt.update({ x: tensor([2], [1], { device }) }, state, p);
  // first step: m̂/√v̂ = g/|g| = 1, so x ← 3 − 1·1/(1 + 1e-8·…)
  assertClose(await p.x.data(), [2], tol, "after step 0");
  [p, state] = opt.update({ x: tensor([2], [1], { device }) }, state, p);
  assertClose(await p.x.data(), [2], tol, "after step 1 (lr 0)");
});

Deno.test("adamw.update() rejects trees of different sizes", () => {
  const device = referenceDevice;
  const opt = adamw({ lr: 1 });
  const p = { a: tensor([1], [1], { device }), b: tensor([1], [1], { device }) };
  const state = opt.init(p);
  assertThrows(() => opt.update({ a: p.a } as never, state, p), /adamw: params have 2 tensors/);
});

for (const device of backends) {
  Deno.test(`clipByGlobalNorm() scales to the norm bound (${device.kind})`, async () => {
    const grads = { a: tensor([3, 0], [2], { device }), b: [tensor([[0, 4]], [1, 2], { device })] };
    assertClose(await globalNorm(grads).data(), [5], tol, "norm");
    const [clipped, norm] = clipByGlobalNorm(grads, 1);
    assertClose(await norm.data(), [5], tol, "returned norm");
    assertClose(await clipped.a.data(), [0.6, 0], tol, "a");
    assertClose(await clipped.b[0]!.data(), [0, 0.8], tol, "b");
    const [same] = clipByGlobalNorm(grads, 10);
    assertClose(await same.a.data(), [3, 0], tol, "below the bound: unchanged");
  });
}

for (const device of backends) {
  Deno.test(`adamw.update() with gradScale equals an update of scaled grads (${device.kind})`, async () => {
    const opt = adamw({ lr: 0.1, weightDecay: 0.5 });
    const t = (x: number[], shape: number[]) => tensor(Float32Array.from(x), shape, { device });
    const params = { w: t([0.5, -1, 2, 0.25], [2, 2]), b: t([1, -2], [2]) };
    const grads = { w: t([3, -4, 1, 2], [2, 2]), b: t([-2, 5], [2]) };
    let [fusedP, fusedS] = [params, opt.init(params)];
    let [plainP, plainS] = [params, opt.init(params)];
    for (let step = 0; step < 2; step++) {
      const [factor, norm] = clipFactor(grads, 1);
      assertClose(await norm.data(), [Math.sqrt(59)], tol, "norm");
      [fusedP, fusedS] = opt.update(grads, fusedS, fusedP, { gradScale: factor });
      const [clipped] = clipByGlobalNorm(grads, 1);
      [plainP, plainS] = opt.update(clipped, plainS, plainP);
    }
    assertClose(await fusedP.w.data(), await plainP.w.data(), tol, "w");
    assertClose(await fusedP.b.data(), await plainP.b.data(), tol, "b");
    const fm = fusedS.m as { w: Tensor }, pm = plainS.m as { w: Tensor };
    assertClose(await fm.w.data(), await pm.w.data(), tol, "m");
  });
}

Deno.test("warmupCosine() values at key steps", () => {
  const lr = warmupCosine({ peak: 1, warmup: 10, total: 111, min: 0.1 });
  assertClose([lr(0), lr(4), lr(9)], [0.1, 0.5, 1], tol, "warmup");
  assertClose([lr(10), lr(60), lr(110), lr(500)], [1, 0.55, 0.1, 0.1], tol, "decay");
  // the curve is monotone after warmup
  for (let s = 10; s < 110; s++) assert(lr(s + 1) <= lr(s), `not decreasing at ${s}`);
});

Deno.test("warmupLinear() values at key steps", () => {
  const lr = warmupLinear({ peak: 2, warmup: 4, total: 105 });
  assertClose([lr(0), lr(3), lr(4), lr(54), lr(104), lr(200)], [0.5, 2, 2, 1, 0, 0], tol, "lr");
  assertEquals(warmupLinear({ peak: 1, warmup: 0, total: 1 })(0), 1);
  assertEquals(constantSchedule(0.3)(1000), 0.3);
  assertThrows(() => warmupCosine({ peak: 1, warmup: 5, total: 3 }), /warmupCosine: expected/);
});
