// LoRA as PEFT (nn/lora.ts): a fresh adapter leaves the model unchanged, merging equals
// running the adapter, PEFT's scale and initialisation, dropout only on the training LoRA
// path, the LoRA term's gradients against finite differences, and gradients that reach the
// trained adapter only — frozen weights get no gradient work at all.
import fc from "fast-check";
import { valueAndGrad, vjp } from "../../autograd/grad.ts";
import { embedding, linear } from "../../nn/linear.ts";
import { inBatchNegativeLoss } from "../../nn/losses.ts";
import {
  attachLora,
  initLora,
  type LoraAttachment,
  type LoraConfig,
  loraEmbeddingDelta,
  loraLinearDelta,
  type LoraParams,
  loraScale,
  mergeLora,
} from "../../nn/lora.ts";
import { nodeAt } from "../../nn/params.ts";
import { loadQwen, type QwenModel, type QwenParams } from "../../qwen/checkpoint.ts";
import { decoder } from "../../qwen/decoder.ts";
import { padRows, sentenceEmbeddings } from "../../qwen/embed.ts";
import { parseTarget, targetModuleShapes, targetSuffixes } from "../../qwen/targets.ts";
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { Rng } from "../../tensor/random.ts";
import { reference64Device, referenceDevice } from "../../tensor/reference.ts";
import { scope, scopeAsync } from "../../tensor/scope.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { assertClose } from "../all_close.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";
import { goldenDir, haveGolden } from "../golden.ts";
import { checkVjp } from "../gradcheck.ts";

/** The paper's LoRA settings (DESIGN 3.5) for the given PEFT target suffixes. */
function config(targetModules: string[], overrides: Partial<LoraConfig> = {}): LoraConfig {
  return {
    r: 8,
    loraAlpha: 16,
    loraDropout: 0.05,
    useRslora: true,
    targetModules,
    baseModelNameOrPath: null,
    ...overrides,
  };
}

/** Seeded normal values as an f32 tensor. */
function randn(shape: number[], seed: number, device: Device, std = 1): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from({ length: n }, () => std * rng.normal()), shape, { device });
}

/** An f32 tensor stored in f64 on the f64 reference device (for checkVjp). */
function randn64(shape: number[], seed: number): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Float64Array.from({ length: n }, () => rng.normal());
  return new Tensor(shape, "f32", reference64Device, reference64Device.upload(values, "f32"));
}

function ids(values: number[], shape: number[], device: Device): Tensor {
  return tensor(Int32Array.from(values), shape, { dtype: "i32", device });
}

/** The name and output shape of every op `device` runs during `fn` (its `run` wrapped). */
function opsRun(device: Device, fn: () => void): { name: string; shape: readonly number[] }[] {
  const ran: { name: string; shape: readonly number[] }[] = [];
  const own = Object.hasOwn(device, "run");
  const original = device.run;
  device.run = function (def, inputs, attrs, outs) {
    ran.push({ name: def.name, shape: outs[0]?.shape ?? [] });
    return original.call(this, def, inputs, attrs, outs);
  };
  try {
    fn();
  } finally {
    if (own) device.run = original;
    else delete (device as { run?: unknown }).run;
  }
  return ran;
}

/** A Linear and an Embedding module, as adapters see them. */
interface TwoModules {
  proj: { weight: Tensor; bias?: Tensor; lora?: LoraAttachment };
  embed_tokens: { weight: Tensor; lora?: LoraAttachment };
}

/** Sum of |values|. */
async function absSum(t: Tensor): Promise<number> {
  return Array.from(await t.data()).reduce((s, v) => s + Math.abs(v), 0);
}

/** The golden tiny model (loaded inside the caller's scope, which frees it). */
function tiny(device: Device): Promise<QwenModel> {
  return loadQwen(`${goldenDir}tiny-f32`, device);
}

for (const device of backends) {
  Deno.test({
    name:
      `attachLora() of a fresh target-ALL adapter leaves tiny-f32's logits bit-for-bit on ${device.name}`,
    ignore: !haveGolden,
    fn: () =>
      scopeAsync(async () => {
        const model = await tiny(device);
        const all = parseTarget("ALL");
        const cfg = config(targetSuffixes(all));
        const lora = initLora(targetModuleShapes(model.config, all), cfg, 7, device);
        assertEquals(Object.keys(lora).length, 15);
        const batch = padRows([[5, 17, 200, 33, 9, 381], [44, 2, 310]], device);
        const plain = decoder(model.params, batch.ids, model.config, {
          attentionMask: batch.mask,
        }).logits!;
        const attached = attachLora(model.params, lora, cfg);
        // the LoRA terms really run: every adapted module carries its attachment
        for (const module of Object.keys(lora)) {
          const node = nodeAt(attached, module) as { lora?: LoraAttachment };
          assert(node.lora?.A === lora[module]!.A, `${module} has no attached adapter`);
        }
        const withLora = decoder(attached, batch.ids, model.config, {
          attentionMask: batch.mask,
        }).logits!;
        const a = await withLora.data(), b = await plain.data();
        assertEquals(a.length, b.length);
        const differing = a.findIndex((v, i) => v !== b[i]);
        assertEquals(differing, -1, `logit ${differing}: ${a[differing]} vs ${b[differing]}`);
        // the base tree is untouched
        assertEquals(
          (nodeAt(model.params, "model.layers.0.mlp.up_proj") as { lora?: unknown }).lora,
          undefined,
        );
      }),
  });
}

for (const device of backends) {
  Deno.test(`mergeLora() equals the attached adapter for Linear and Embedding on ${device.name}`, async () => {
    const dims = fc.record({
      batch: fc.integer({ min: 1, max: 3 }),
      tokens: fc.integer({ min: 1, max: 4 }),
      inF: fc.integer({ min: 1, max: 12 }),
      outF: fc.integer({ min: 1, max: 12 }),
      r: fc.integer({ min: 1, max: 4 }),
      alpha: fc.integer({ min: 1, max: 32 }),
      rslora: fc.boolean(),
      seed: fc.integer({ min: 0, max: 1 << 20 }),
    });
    await assertProperty(
      fc.asyncProperty(
        dims,
        ({ batch, tokens, inF, outF, r, alpha, rslora, seed }) =>
          scopeAsync(async () => {
            const cfg = config(["proj", "embed_tokens"], {
              r,
              loraAlpha: alpha,
              useRslora: rslora,
            });
            const scale = rslora ? alpha / Math.sqrt(r) : alpha / r;
            assertEquals(loraScale(cfg, "proj"), scale);
            // Linear [out, in] with a bias; Embedding [V = out, H = in]
            const base: TwoModules = {
              proj: {
                weight: randn([outF, inF], seed, device),
                bias: randn([outF], seed + 1, device),
              },
              embed_tokens: { weight: randn([outF, inF], seed + 2, device) },
            };
            const lora: LoraParams = {
              proj: { A: randn([r, inF], seed + 3, device), B: randn([outF, r], seed + 4, device) },
              embed_tokens: {
                A: randn([r, outF], seed + 5, device),
                B: randn([inF, r], seed + 6, device),
              },
            };
            const attached = attachLora(base, lora, cfg);
            const merged = mergeLora(base, lora, cfg);
            assertEquals(merged.proj.bias, base.proj.bias);
            assertEquals(merged.proj.lora, undefined);
            const x = randn([batch, tokens, inF], seed + 7, device);
            const rows = Array.from({ length: batch * tokens }, (_, i) => (i * 7 + seed) % outF);
            const tokenIds = ids(rows, [batch, tokens], device);
            // |terms| ≤ ~scale·r·in·4: f32 rounding of sums that size, with room for WebGPU
            const tol = { atol: 2e-5 * (1 + scale) * (inF + r), rtol: 1e-4 };
            assertClose(
              await linear(x, merged.proj).data(),
              await linear(x, attached.proj).data(),
              tol,
              "linear",
              [batch, tokens, outF],
            );
            assertClose(
              await embedding(tokenIds, merged.embed_tokens).data(),
              await embedding(tokenIds, attached.embed_tokens).data(),
              tol,
              "embedding",
              [batch, tokens, inF],
            );
          }),
      ),
      device === referenceDevice ? 30 : 12,
    );
  });
}

Deno.test("loraScale() is α/√r with rslora, α/r without, per module from rank/alpha patterns", () => {
  const q = "model.layers.0.self_attn.q_proj", up = "model.layers.0.mlp.up_proj";
  const down = "model.layers.1.mlp.down_proj";
  assertEquals(loraScale(config(["q_proj"]), q), 16 / Math.sqrt(8));
  assertEquals(loraScale(config(["q_proj"], { useRslora: false }), q), 2);
  const patterned = config(["q_proj", "up_proj", "down_proj"], {
    rankPattern: { q_proj: 4, "layers.0.mlp.up_proj": 2 },
    alphaPattern: { down_proj: 32, q_proj: 8 },
  });
  assertEquals(loraScale(patterned, q), 8 / Math.sqrt(4));
  assertEquals(loraScale(patterned, up), 16 / Math.sqrt(2));
  assertEquals(loraScale(patterned, down), 32 / Math.sqrt(8));
  // a key names a whole path segment: layer 10's up_proj is not layer 0's
  assertEquals(loraScale(patterned, "model.layers.10.mlp.up_proj"), 16 / Math.sqrt(8));
  assertEquals(
    loraScale({ ...patterned, useRslora: false }, q),
    8 / 4,
  );
});

Deno.test("initLora() initialises as PEFT: Linear A uniform ±1/√in and B zero, Embedding A zero and B normal", async () => {
  const up = "model.layers.0.mlp.up_proj", gate = "model.layers.0.mlp.gate_proj";
  const emb = "model.embed_tokens";
  const shapes = new Map([[up, [176, 64]], [gate, [176, 64]], [emb, [384, 64]]]);
  const cfg = config(["up_proj", "gate_proj", "embed_tokens"], { rankPattern: { gate_proj: 4 } });
  const lora = initLora(shapes, cfg, 42, referenceDevice);
  assertDeepEqual(Object.keys(lora), [up, gate, emb]);

  const a = await lora[up]!.A.data();
  assertDeepEqual([...lora[up]!.A.shape], [8, 64]);
  assertDeepEqual([...lora[up]!.B.shape], [176, 8]);
  assert(a.every((v) => Math.abs(v) <= 1 / 8), "A within ±1/√64");
  const spread = Math.max(...a) - Math.min(...a);
  assert(spread > 0.2, `A spans ${spread} of the 0.25 range`);
  assert(new Set(a).size > a.length / 2, "A values are distinct draws");
  assertEquals(await absSum(lora[up]!.B), 0);
  // rank_pattern gives gate_proj its own rank; each module draws its own values
  assertDeepEqual([...lora[gate]!.A.shape], [4, 64]);
  assertDeepEqual([...lora[gate]!.B.shape], [176, 4]);
  const g = await lora[gate]!.A.data();
  assert(g.some((v, i) => v !== a[i]), "two modules share their A values");

  assertDeepEqual([...lora[emb]!.A.shape], [8, 384]);
  assertDeepEqual([...lora[emb]!.B.shape], [64, 8]);
  assertEquals(await absSum(lora[emb]!.A), 0);
  const b = Array.from(await lora[emb]!.B.data());
  const mean = b.reduce((s, v) => s + v, 0) / b.length;
  const std = Math.sqrt(b.reduce((s, v) => s + (v - mean) ** 2, 0) / b.length);
  assert(Math.abs(mean) < 0.2 && std > 0.85 && std < 1.15, `B mean ${mean}, std ${std}`);

  const again = initLora(shapes, cfg, 42, referenceDevice);
  const other = initLora(shapes, cfg, 43, referenceDevice);
  for (const module of [up, gate, emb]) {
    for (const which of ["A", "B"] as const) {
      assertDeepEqual(
        await again[module]![which].data(),
        await lora[module]![which].data(),
        `${module} ${which} differs for the same seed`,
      );
    }
  }
  assert(
    (await other[up]!.A.data()).some((v, i) => v !== a[i]),
    "another seed gives another A",
  );
});

Deno.test("attachLora() applies dropout to the Linear LoRA input in training only", async () => {
  const device = referenceDevice;
  const cfg = config(["proj", "embed_tokens"], { loraDropout: 0.5 });
  const base: TwoModules = {
    proj: { weight: randn([4, 6], 1, device), bias: randn([4], 2, device) },
    embed_tokens: { weight: randn([10, 6], 3, device) },
  };
  const lora: LoraParams = {
    proj: { A: randn([3, 6], 4, device), B: randn([4, 3], 5, device) },
    embed_tokens: { A: randn([3, 10], 6, device), B: randn([6, 3], 7, device) },
  };
  const x = randn([2, 5, 6], 8, device);
  const tokenIds = ids([1, 4, 9, 0, 4, 7], [2, 3], device);
  const run = (tree: TwoModules) => linear(x, tree.proj).data();

  // evaluation: no dropout, exactly base + scale·x·Aᵀ·Bᵀ
  const evaluation = attachLora(base, lora, cfg);
  assertEquals(evaluation.proj.lora!.dropout, 0);
  const noDropout = { ...lora.proj!, scale: loraScale(cfg, "proj"), dropout: 0, seed: 0 };
  assertDeepEqual(
    await run(evaluation),
    await add(linear(x, base.proj), loraLinearDelta(x, noDropout)).data(),
  );

  const train1 = attachLora(base, lora, cfg, { dropoutSeed: 1 });
  assertEquals(train1.proj.lora!.dropout, 0.5);
  const t1 = await run(train1);
  assert((await run(evaluation)).some((v, i) => v !== t1[i]), "dropout changed nothing");
  assertDeepEqual(await run(attachLora(base, lora, cfg, { dropoutSeed: 1 })), t1);
  const t2 = await run(attachLora(base, lora, cfg, { dropoutSeed: 2 }));
  assert(t2.some((v, i) => v !== t1[i]), "another dropout seed gives the same mask");

  // only the LoRA path is dropped: with B = 0 a training forward is the base forward
  const zeroB = { ...lora, proj: { A: lora.proj!.A, B: tensor(new Float32Array(12), [4, 3]) } };
  assertDeepEqual(
    await run(attachLora(base, zeroB, cfg, { dropoutSeed: 1 })),
    await linear(x, base.proj).data(),
  );

  // PEFT's Embedding has no dropout: the training lookup equals the evaluation lookup
  assertEquals(train1.embed_tokens.lora!.dropout, 0);
  assertDeepEqual(
    await embedding(tokenIds, train1.embed_tokens).data(),
    await embedding(tokenIds, evaluation.embed_tokens).data(),
  );
  const embAttachment = { ...lora.embed_tokens!, scale: 2, dropout: 0, seed: 0 };
  assert(await absSum(loraEmbeddingDelta(tokenIds, embAttachment)) > 0, "embedding term is zero");
});

Deno.test("linear() and embedding() with an adapter: VJP of (x, A, B) matches finite differences", async () => {
  const x = randn64([2, 3, 5], 1), weight = randn64([4, 5], 2), bias = randn64([4], 3);
  const a = randn64([3, 5], 4), b = randn64([4, 3], 5);
  for (const p of [0, 0.3]) {
    await checkVjp(
      (xx, aa, bb) =>
        linear(xx, { weight, bias, lora: { A: aa, B: bb, scale: 1.7, dropout: p, seed: 11 } }),
      [x, a, b],
      { label: `linear LoRA (dropout ${p})` },
    );
  }
  const table = randn64([7, 5], 6);
  const tokenIds = ids([0, 3, 6, 3, 1, 6], [2, 3], reference64Device);
  await checkVjp(
    (aa, bb) =>
      embedding(tokenIds, {
        weight: table,
        lora: { A: aa, B: bb, scale: 0.8, dropout: 0, seed: 0 },
      }),
    [randn64([3, 7], 7), randn64([5, 3], 8)],
    { label: "embedding LoRA" },
  );
});

Deno.test("a frozen Linear weight gets no gradient product: backward runs one matmul", () => {
  const device = referenceDevice;
  scope(() => {
    const x = randn([2, 3, 5], 1, device), weight = randn([4, 5], 2, device);
    const cot = randn([2, 3, 4], 3, device);
    const [, back] = vjp((xx: Tensor) => linear(xx, { weight }), x);
    const frozen = opsRun(device, () => back(cot)).filter((o) => o.name === "matmul");
    assertDeepEqual(frozen.map((o) => [...o.shape]), [[2, 3, 5]]);
    const [, backBoth] = vjp((xx: Tensor, w: Tensor) => linear(xx, { weight: w }), x, weight);
    const both = opsRun(device, () => backBoth(cot)).filter((o) => o.name === "matmul");
    assertDeepEqual(both.map((o) => [...o.shape]).sort(), [[2, 3, 5], [4, 5]]);
  });
});

/** The contrastive loss of DESIGN 3.5 with the adapter as the differentiated argument. */
function contrastiveLoss(
  lora: LoraParams,
  base: QwenParams,
  model: QwenModel,
  cfg: LoraConfig,
  batch: { ids: Tensor; mask: Tensor },
): Tensor {
  const params = attachLora(base, lora, cfg);
  return inBatchNegativeLoss(sentenceEmbeddings(params, batch.ids, batch.mask, model.config));
}

Deno.test({
  name:
    "valueAndGrad() of the contrastive loss reaches only the adapter, frozen weights get no gradient work",
  ignore: !haveGolden,
  fn: () =>
    scopeAsync(async () => {
      const device = referenceDevice;
      const model = await tiny(device);
      const batch = padRows([[5, 17, 200, 33, 9], [44, 2, 310], [7, 7, 8, 120], [300, 12]], device);
      const frozenShapes = new Set(
        [...targetModuleShapes(model.config, parseTarget("ALL")).values()].map((s) => s.join(",")),
      );
      for (const name of ["FFN", "EMB"]) {
        const target = parseTarget(name);
        const cfg = config(targetSuffixes(target));
        const shapes = targetModuleShapes(model.config, target);
        const lora = initLora(shapes, cfg, 3, device);
        let loss: Tensor | undefined, grads: LoraParams | undefined;
        const ran = opsRun(device, () => {
          [loss, grads] = valueAndGrad(contrastiveLoss)(lora, model.params, model, cfg, batch);
        });
        assert(Number.isFinite((await loss!.data())[0]!), `${name}: loss not finite`);
        // no product has a base weight's shape: no frozen weight got a gradient
        const weightGrads = ran.filter((o) =>
          o.shape.length === 2 && frozenShapes.has(o.shape.join(","))
        );
        assertDeepEqual(weightGrads, [], `${name}: frozen weight gradients were computed`);
        const scatters = ran.filter((o) => o.name === "scatterAdd");
        assertDeepEqual(Object.keys(grads!).sort(), [...shapes.keys()].sort());
        if (name === "FFN") {
          // the frozen embedding's scatter-add is skipped
          assertEquals(scatters.length, 0, `${name}: scatterAdd ran`);
          // Linear: B = 0, so ∂/∂A = scale·Bᵀ·(…) = 0 while ∂/∂B = scale·g·(x·Aᵀ) ≠ 0
          for (const [module, g] of Object.entries(grads!)) {
            assertEquals(await absSum(g.A), 0, `${module}: A grad`);
            assert(await absSum(g.B) > 0, `${module}: B grad is zero`);
          }
        } else {
          // one scatter-add, into the adapter's [V, r] rows, not the [V, H] embedding
          assertDeepEqual(scatters.map((o) => [...o.shape]), [[model.config.vocabSize, 8]]);
          // Embedding: A = 0, so ∂/∂B = scale·gᵀ·Aᵀ[ids] = 0 while ∂/∂A ≠ 0 (B is normal)
          const g = grads!["model.embed_tokens"]!;
          assert(await absSum(g.A) > 0, "embedding A grad is zero");
          assertEquals(await absSum(g.B), 0, "embedding B grad");
        }
      }
    }),
});
