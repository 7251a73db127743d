// Deterministic lifetimes (DESIGN 5): a scope frees what it created except what it returns,
// and a training loop inside scopes keeps live device memory flat on every backend.
import { valueAndGrad } from "../../autograd/grad.ts";
import { randomNormal, tensor } from "../../tensor/create.ts";
import { add, mul, sub, tanh } from "../../tensor/ops/elementwise.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { mean } from "../../tensor/ops/reduce.ts";
import { forEachTensor, leaves, unflatten } from "../../tensor/pytree.ts";
import { keep, scope } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";

interface Mlp {
  w1: Tensor; // [8, 16]
  b1: Tensor; // [16]
  w2: Tensor; // [16, 4]
  b2: Tensor; // [4]
}

function mlpLoss(p: Mlp, x: Tensor, y: Tensor): Tensor {
  const hidden = tanh(add(matmul(x, p.w1), p.b1));
  const diff = sub(add(matmul(hidden, p.w2), p.b2), y);
  return mean(mul(diff, diff));
}

function dispose(tree: unknown): void {
  forEachTensor(tree, (t) => t.dispose());
}

for (const device of backends) {
  Deno.test(`scope() keeps live memory flat over 200 SGD steps of an MLP on ${device.name}`, async () => {
    const x = randomNormal([5, 8], { seed: 1, device }),
      y = randomNormal([5, 4], { seed: 2, device });
    let params: Mlp = {
      w1: randomNormal([8, 16], { seed: 3, std: 0.3, device }),
      b1: randomNormal([16], { seed: 4, std: 0.1, device }),
      w2: randomNormal([16, 4], { seed: 5, std: 0.3, device }),
      b2: randomNormal([4], { seed: 6, std: 0.1, device }),
    };
    const step = valueAndGrad(mlpLoss);
    let at10 = device.stats(), first = NaN, last = NaN;
    for (let i = 1; i <= 200; i++) {
      const [loss, next] = scope(() => {
        const [loss, grads] = step(params, x, y);
        const g = leaves(grads);
        const next = unflatten(params, leaves(params).map((p, k) => sub(p, mul(g[k]!, 0.1))));
        return [loss, next] as const;
      });
      dispose(params);
      params = next;
      if (i === 1) first = await loss.item();
      if (i === 200) last = await loss.item();
      loss.dispose();
      if (i === 10) at10 = device.stats();
    }
    const at200 = device.stats();
    assertDeepEqual(
      { liveBytes: at200.liveBytes, liveCount: at200.liveCount },
      { liveBytes: at10.liveBytes, liveCount: at10.liveCount },
      "live memory after step 200 vs step 10",
    );
    assert(last < first, `training did not reduce the loss: ${first} → ${last}`);
    dispose([params, x, y]);
  });

  Deno.test(`scope() disposes intermediates and keeps returned tensors on ${device.name}`, async () => {
    const before = device.stats();
    let inner: Tensor | undefined, kept: Tensor | undefined;
    const result = scope(() => {
      const a = tensor([1, 2, 3], [3], { device });
      inner = mul(a, a);
      kept = keep(add(a, 1));
      return { out: add(inner, a), label: "not a tensor" };
    });
    assert(!inner!.alive, "an intermediate survived its scope");
    assert(result.out.alive && kept!.alive, "a returned or kept tensor was disposed");
    assertEquals(result.label, "not a tensor");
    assertDeepEqual(Array.from(await result.out.data()), [2, 6, 12]);
    // nested: the inner scope's result moves to the outer scope, which frees it
    const outer = scope(() => {
      const moved = scope(() => tensor([5], [1], { device }));
      assert(moved.alive);
      return { moved };
    });
    assert(outer.moved.alive);
    const freed = scope(() => {
      scope(() => tensor([5], [1], { device }));
      return null;
    });
    assertEquals(freed, null);
    dispose([result, kept, outer]);
    const after = device.stats();
    assertDeepEqual([after.liveBytes, after.liveCount], [before.liveBytes, before.liveCount]);
  });
}
