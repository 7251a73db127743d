// Autodiff as functions over pytrees (DESIGN 4): grad / valueAndGrad over nested params,
// stopGradient, accumulation over repeated use, and freezing by argument position.
import fc from "fast-check";
import { grad, stopGradient, valueAndGrad, vjp } from "../../autograd/grad.ts";
import { randomNormal, tensor } from "../../tensor/create.ts";
import { add, exp, mul, sub } from "../../tensor/ops/elementwise.ts";
import { reshape } from "../../tensor/ops/layout.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { forEachTensor, leaves, mapTensors, type PyTree } from "../../tensor/pytree.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { assertClose } from "../all_close.ts";
import { pytree, shape } from "../arbitraries.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";

const tol = { atol: 1e-6, rtol: 1e-6 };

/** The tree with each tensor replaced by its shape: compares structures. */
const structure = (tree: PyTree) => mapTensors(tree, (t) => `tensor[${t.shape}]`);

/** Σ_i (i + 1) · Σ leaf_i², whose gradient is 2 (i + 1) · leaf_i. */
function weightedSquares(params: PyTree): Tensor {
  let total: Tensor | undefined;
  leaves(params).forEach((t, i) => {
    const term = mul(sum(mul(t, t)), i + 1);
    total = total ? add(total, term) : term;
  });
  return total!;
}

Deno.test("grad() over a nested pytree returns a tree like the params with each leaf's gradient", async () => {
  const trees = fc.tuple(pytree(shape({ maxRank: 2, maxSize: 12 })), fc.nat());
  await assertProperty(
    fc.asyncProperty(trees, ([shapes, seed]) =>
      scopeAsync(async () => {
        let k = 0;
        const params = (function build(node: unknown): unknown {
          if (Array.isArray(node) && node.every((d) => typeof d === "number")) {
            return randomNormal(node as number[], { seed: seed + k++ });
          }
          if (Array.isArray(node)) return node.map(build);
          return Object.fromEntries(
            Object.entries(node as object).map(([key, v]) => [key, build(v)]),
          );
        })(shapes);
        const [value, grads] = valueAndGrad(weightedSquares)(params);
        assertDeepEqual(structure(grads), structure(params));
        const ls = leaves(params), gs = leaves(grads);
        let want = 0;
        for (let i = 0; i < ls.length; i++) {
          const x = Array.from(await ls[i]!.data());
          want += (i + 1) * x.reduce((a: number, b: number) => a + b * b, 0);
          assertClose(await gs[i]!.data(), Array.from(x, (v) => 2 * (i + 1) * v), tol, `leaf ${i}`);
        }
        assertClose([await value.item()], [want], { atol: 1e-5, rtol: 1e-5 }, "value");
      })),
    25,
  );
});

Deno.test("stopGradient() cuts the gradient through its argument", async () => {
  await scopeAsync(async () => {
    const x = tensor([0.5, -1, 2]);
    // d/dx Σ x · sg(x) = sg(x) = x, not 2x
    const g = grad((x: Tensor) => sum(mul(x, stopGradient(x))))(x);
    assertDeepEqual(Array.from(await g.data()), [0.5, -1, 2]);
    const none = grad((x: Tensor) => sum(exp(stopGradient(x))))(x);
    assertDeepEqual(Array.from(await none.data()), [0, 0, 0]);
  });
});

Deno.test("grad() of a function that uses a param twice accumulates both uses", async () => {
  await scopeAsync(async () => {
    const x = tensor([0.5, -1, 2]);
    // Σ (x² + x) → 2x + 1
    const g = grad((x: Tensor) => sum(add(mul(x, x), x)))(x);
    assertClose(await g.data(), [2, -1, 5], tol, "d/dx Σ(x² + x)");
    // the same param in two branches of a tree: w used by both layers
    const w = randomNormal([3, 3], { seed: 1 }), v = randomNormal([2, 3], { seed: 2 });
    const twice = (p: { w: Tensor }) => sum(matmul(matmul(v, p.w), p.w));
    const gw = grad(twice)({ w }).w;
    // reference: vjp with two separate copies of w, summed
    const [, back] = vjp((a: Tensor, b: Tensor) => sum(matmul(matmul(v, a), b)), w, w);
    const [ga, gb] = back(tensor(1));
    assertClose(await gw.data(), await add(ga, gb).data(), tol, "shared w");
  });
});

Deno.test("valueAndGrad() differentiates only its first argument (freezing)", async () => {
  await scopeAsync(async () => {
    const trainable = { lora: tensor([1, 2]) };
    const frozen = { base: tensor([3, -4]) };
    const batch = tensor([0.5, 0.25]);
    const loss = (t: { lora: Tensor }, f: { base: Tensor }, x: Tensor) =>
      sum(mul(add(t.lora, f.base), x));
    const [value, grads] = valueAndGrad(loss)(trainable, frozen, batch);
    assertDeepEqual(structure(grads), structure(trainable));
    assertDeepEqual(Array.from(await grads.lora.data()), [0.5, 0.25]);
    assertEquals(await value.item(), (1 + 3) * 0.5 + (2 - 4) * 0.25);
    let frozenAlive = true;
    forEachTensor([frozen, batch], (t) => (frozenAlive &&= t.alive));
    assert(frozenAlive, "valueAndGrad disposed a frozen input");
    // a loss that ignores the params has zero gradient, not a missing one
    const zero = grad((_t: { lora: Tensor }, f: { base: Tensor }) => sum(f.base))(
      trainable,
      frozen,
    );
    assertDeepEqual(Array.from(await zero.lora.data()), [0, 0]);
  });
});

Deno.test("vjp() maps output cotangents to every primal", async () => {
  await scopeAsync(async () => {
    const a = tensor([1, 2, 3]), b = tensor([4, 5, 6]);
    const [out, back] = vjp((a: Tensor, b: Tensor) => ({ d: sub(a, b), p: mul(a, b) }), a, b);
    assert(out.d instanceof Tensor && out.p instanceof Tensor);
    const [ga, gb] = back({ d: tensor([1, 1, 1]), p: tensor([1, 0, 2]) });
    assertDeepEqual(Array.from(await ga.data()), [1 + 4, 1, 1 + 12]);
    assertDeepEqual(Array.from(await gb.data()), [-1 + 1, -1, -1 + 6]);
  });
});

Deno.test("valueAndGrad() frees as backprop goes and still equals vjp() bit for bit, inputs untouched", async () => {
  for (const device of backends) {
    await scopeAsync(async () => {
      const w = randomNormal([6, 5], { seed: 1, device });
      const b = randomNormal([5], { seed: 2, device });
      const x = randomNormal([4, 6], { seed: 3, device }); // frozen
      // a shared value read by three consumers, add (one cotangent for both inputs), views,
      // a stopped branch and a frozen argument
      const f = (p: { w: Tensor; b: Tensor }, x: Tensor) => {
        const h = add(matmul(x, p.w), p.b);
        const shared = exp(mul(h, 0.1));
        const view = reshape(shared, [2, 10]);
        const mixed = add(mul(shared, shared), reshape(mul(view, 3), [4, 5]));
        return sum(sub(add(mixed, shared), stopGradient(mul(shared, h))));
      };
      const [value, grads] = valueAndGrad(f)({ w, b }, x);
      const [out, back] = vjp((p: { w: Tensor; b: Tensor }) => f(p, x), { w, b });
      const [expected] = back(tensor([1], [], { device }) as never) as [{ w: Tensor; b: Tensor }];
      assertEquals(await value.item(), await out.item());
      assertDeepEqual(Array.from(await grads.w.data()), Array.from(await expected.w.data()));
      assertDeepEqual(Array.from(await grads.b.data()), Array.from(await expected.b.data()));
      for (const t of [w, b, x]) assert(t.alive, "an input was freed");
    });
  }
});
