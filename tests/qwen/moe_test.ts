// The UBMoE block (qwen/moe.ts, DESIGN 3.6) and its use by the decoder: routing every token to
// expert 0 gives the base model, to expert 1 the base with the bi MLPs; the token-routed
// mixture equals the dense "every token through every expert" sum; top-k ties, the
// load-balancing loss by hand, the router VJP by finite differences, decoderAsync against
// decoder with its own routing, and the config's MoE fields.
import fc from "fast-check";
import { Checkpoint, loadQwen, type QwenParams } from "../../qwen/checkpoint.ts";
import { ConfigError, expectedShapes, parseQwen2Config } from "../../qwen/config.ts";
import { decoder, decoderAsync } from "../../qwen/decoder.ts";
import {
  expertMlp,
  type ExpertParams,
  loadBalancingLoss,
  moeMlp,
  routerProbs,
  topKExperts,
} from "../../qwen/moe.ts";
import { assembleUbmoe } from "../../qwen/ubmoe.ts";
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { Rng } from "../../tensor/random.ts";
import { reference64Device } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { Tensor } from "../../tensor/tensor.ts";
import { assertClose } from "../all_close.ts";
import { assert, assertDeepEqual, assertEquals, assertThrows } from "../assert.ts";
import { backends } from "../backends.ts";
import { assertProperty } from "../fc.ts";
import { goldenDir, haveGolden, readExpectedJson } from "../golden.ts";
import { checkVjp } from "../gradcheck.ts";

const tinyDir = `${goldenDir}tiny-f32`;

function normals(n: number, rng: Rng, std = 1): Float32Array {
  return Float32Array.from({ length: n }, () => std * rng.normal());
}

function randn(shape: number[], rng: Rng, device: Device, std = 1): Tensor {
  return tensor(normals(shape.reduce((a, b) => a * b, 1), rng, std), shape, { device });
}

/** An f32 tensor stored in f64 on the f64 reference device (for checkVjp). */
function randn64(shape: number[], rng: Rng, std = 1): Tensor {
  const values = Float64Array.from(normals(shape.reduce((a, b) => a * b, 1), rng, std));
  return new Tensor(shape, "f32", reference64Device, reference64Device.upload(values, "f32"));
}

/** A random SwiGLU expert of hidden size h and intermediate size i; `make` draws a weight. */
function randomExpert(h: number, i: number, make: (shape: number[]) => Tensor): ExpertParams {
  const w = (shape: number[]) => ({ weight: make(shape) });
  return { gate_proj: w([i, h]), up_proj: w([i, h]), down_proj: w([h, i]) };
}

/** Random router probabilities [N, E] (softmax of N(0, 2²) logits), on the host. */
function randomProbs(n: number, e: number, rng: Rng): Float32Array {
  const p = new Float32Array(n * e);
  for (let t = 0; t < n; t++) {
    const z = Array.from({ length: e }, () => Math.exp(2 * rng.normal()));
    const s = z.reduce((a, b) => a + b, 0);
    z.forEach((v, j) => p[t * e + j] = v / s);
  }
  return p;
}

/** k distinct experts per token in random order. */
function randomDecision(n: number, e: number, k: number, rng: Rng): Int32Array {
  const d = new Int32Array(n * k);
  for (let t = 0; t < n; t++) {
    const ids = Array.from({ length: e }, (_, i) => i);
    for (let j = 0; j < k; j++) {
      const pick = j + rng.int(e - j);
      [ids[j], ids[pick]] = [ids[pick]!, ids[j]!];
      d[t * k + j] = ids[j]!;
    }
  }
  return d;
}

function moeConfig(numExperts: number, k: number, norm: boolean) {
  return { numExperts, numExpertsPerTok: k, normTopkProb: norm, routerAuxLossCoef: 0 };
}

// ---- the mixture against the dense computation ------------------------------------------

for (const device of backends) {
  Deno.test(`moeMlp() equals Σ_j w_j · expert_j(u) with every expert run on every token on ${device.name}`, async () => {
    await assertProperty(
      fc.asyncProperty(
        fc.record({
          n: fc.integer({ min: 1, max: 9 }),
          e: fc.integer({ min: 2, max: 3 }),
          k: fc.integer({ min: 1, max: 2 }),
          norm: fc.boolean(),
          // one expert may receive every token (the other none)
          oneExpert: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1e6 }),
        }),
        ({ n, e, k, norm, oneExpert, seed }) =>
          scopeAsync(async () => {
            const h = 8, i = 12;
            const rng = new Rng(seed);
            const u = randn([n, h], rng, device);
            const experts = Array.from(
              { length: e },
              () => randomExpert(h, i, (s) => randn(s, rng, device, 0.5)),
            );
            const p = randomProbs(n, e, rng);
            const decision = oneExpert && k === 1
              ? new Int32Array(n).fill(e - 1)
              : randomDecision(n, e, k, rng);
            const moe = moeConfig(e, k, norm);
            const got = await moeMlp(
              u,
              tensor(p, [n, e], { device }),
              { gate: { weight: randn([e, h], rng, device) }, experts },
              moe,
              decision,
            ).data();
            // the dense computation: every expert on every token, weights built on the host
            const w = new Float64Array(n * e);
            for (let t = 0; t < n; t++) {
              const chosen = Array.from(decision.subarray(t * k, t * k + k));
              const total = chosen.reduce((a, x) => a + p[t * e + x]!, 0);
              for (const x of chosen) w[t * e + x] = p[t * e + x]! / (norm ? total : 1);
            }
            const dense = await Promise.all(experts.map((x) => expertMlp(u, x).data()));
            const want = new Float64Array(n * h);
            for (let t = 0; t < n; t++) {
              for (let c = 0; c < h; c++) {
                for (let x = 0; x < e; x++) {
                  want[t * h + c]! += w[t * e + x]! * dense[x]![t * h + c]!;
                }
              }
            }
            assertClose(got, want, { atol: 1e-4, rtol: 1e-4 }, "moeMlp vs dense", [n, h]);
          }),
      ),
      12,
    );
  });
}

// ---- top-k and the load-balancing loss --------------------------------------------------

Deno.test("topKExperts() orders by decreasing probability and breaks ties to the lower id", () => {
  assertDeepEqual([...topKExperts([0.2, 0.8, 0.5, 0.5, 0.9, 0.1], 3, 2, 1)], [1, 0, 0]);
  assertDeepEqual([...topKExperts([0.2, 0.8, 0.5, 0.5, 0.9, 0.1], 3, 2, 2)], [1, 0, 0, 1, 0, 1]);
  // four experts, three tied at the top: the lower ids win and come first
  const row = [0.3, 0.1, 0.3, 0.3];
  assertDeepEqual([...topKExperts(row, 1, 4, 1)], [0]);
  assertDeepEqual([...topKExperts(row, 1, 4, 2)], [0, 2]);
  assertDeepEqual([...topKExperts(row, 1, 4, 3)], [0, 2, 3]);
  assertDeepEqual([...topKExperts(row, 1, 4, 4)], [0, 2, 3, 1]);
  assertDeepEqual([...topKExperts([0.1, 0.2, 0.3, 0.4], 1, 4, 4)], [3, 2, 1, 0]);
  assertDeepEqual([...topKExperts(new Float32Array(0), 0, 2, 1)], []);
});

Deno.test("topKExperts() picks the k largest of each row, as a full sort by (−p, id) does", async () => {
  await assertProperty(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 1e6 }),
      (n, e, seed) => {
        const rng = new Rng(seed);
        // few distinct values, so ties are common
        const p = Float32Array.from({ length: n * e }, () => rng.int(3) / 4);
        for (let k = 1; k <= e; k++) {
          const d = topKExperts(p, n, e, k);
          assertEquals(d.length, n * k);
          for (let t = 0; t < n; t++) {
            const want = Array.from({ length: e }, (_, j) => j)
              .sort((a, b) => p[t * e + b]! - p[t * e + a]! || a - b)
              .slice(0, k);
            assertDeepEqual([...d.subarray(t * k, t * k + k)], want);
          }
        }
      },
    ),
    100,
  );
});

Deno.test("loadBalancingLoss() equals E · Σ_slot Σ_e f_e · P_e computed by hand", async () => {
  const device = backends[0]!;
  // two layers, top-1, two experts: 3 tokens, f = [2/3, 1/3], P = [2/3, 1/3]
  const l1 = tensor([[0.7, 0.3], [0.4, 0.6]], undefined, { device });
  const l2 = tensor([[0.9, 0.1]], undefined, { device });
  const top1 = await loadBalancingLoss(
    [l1, l2],
    [Int32Array.from([0, 1]), Int32Array.from([0])],
    moeConfig(2, 1, false),
  ).item();
  assert(Math.abs(top1 - 10 / 9) < 1e-6, `top-1 loss ${top1}, by hand 10/9`);
  // top-2 of three experts, f per slot: slot 0 [1/2, 0, 1/2], slot 1 [0, 1, 0]; P = [.3, .25, .45]
  const p3 = tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]], undefined, { device });
  const top2 = await loadBalancingLoss(
    [p3],
    [Int32Array.from([0, 1, 2, 1])],
    moeConfig(3, 2, false),
  ).item();
  assert(Math.abs(top2 - 1.875) < 1e-6, `top-2 loss ${top2}, by hand 1.875`);
  // perfectly balanced uniform routing gives the minimum 1 (per slot)
  const uniform = tensor([[0.5, 0.5], [0.5, 0.5]], undefined, { device });
  const balanced = await loadBalancingLoss(
    [uniform],
    [Int32Array.from([0, 1])],
    moeConfig(2, 1, false),
  ).item();
  assert(Math.abs(balanced - 1) < 1e-6, `balanced loss ${balanced}`);
});

Deno.test("loadBalancingLoss() VJP in the router probabilities matches finite differences", async () => {
  const rng = new Rng(3);
  const decisions = [randomDecision(4, 3, 2, rng), randomDecision(2, 3, 2, rng)];
  await checkVjp(
    (a, b) => loadBalancingLoss([a, b], decisions, moeConfig(3, 2, false)),
    [randn64([4, 3], rng), randn64([2, 3], rng)],
    { label: "loadBalancingLoss" },
  );
});

// ---- the router path's gradient ---------------------------------------------------------

Deno.test("moeMlp() through routerProbs(): VJP in the router weights and u matches finite differences", async () => {
  for (const [e, k, norm] of [[2, 1, false], [2, 2, false], [2, 1, true], [3, 2, true]] as const) {
    const rng = new Rng(10 * e + k + (norm ? 5 : 0));
    const n = 5, h = 6, i = 7;
    const experts = Array.from(
      { length: e },
      () => randomExpert(h, i, (s) => randn64(s, rng, 0.5)),
    );
    const decision = randomDecision(n, e, k, rng);
    const moe = moeConfig(e, k, norm);
    const f = (u: Tensor, router: Tensor) =>
      moeMlp(
        u,
        routerProbs(u, { weight: router }),
        { gate: { weight: router }, experts },
        moe,
        decision,
      );
    await checkVjp(f, [randn64([n, h], rng), randn64([e, h], rng)], {
      label: `moeMlp router path (E ${e}, top-${k}, norm ${norm})`,
    });
  }
});

// ---- the decoder on tiny-f32 ------------------------------------------------------------

/** tiny-f32 as UBMoE (experts 1 and routers from ubmoe.safetensors) with top-k `k`. */
async function tinyUbmoe(device: Device, k: number, norm: boolean) {
  const base = await loadQwen(tinyDir, device);
  using extra = await Checkpoint.open(tinyDir, "ubmoe");
  const biMlps: ExpertParams[] = [], routers: Tensor[] = [];
  for (let l = 0; l < base.config.numHiddenLayers; l++) {
    const w = async (n: string) => ({
      weight: await extra.load(`model.layers.${l}.mlp.${n}`, device),
    });
    biMlps.push({
      gate_proj: await w("experts.1.gate_proj.weight"),
      up_proj: await w("experts.1.up_proj.weight"),
      down_proj: await w("experts.1.down_proj.weight"),
    });
    routers.push((await w("gate.weight")).weight);
  }
  const config = parseQwen2Config(
    { ...base.config.raw, num_experts: 2, num_experts_per_tok: k, norm_topk_prob: norm },
    "ubmoe config",
  );
  return { base, biMlps, params: assembleUbmoe(base.params, biMlps, routers), config };
}

/** The golden batch (right-padded) as ids and mask, and which flat positions are real. */
async function goldenBatch(device: Device) {
  const json = await readExpectedJson("tiny-f32");
  const { input_ids, attention_mask } = json.batch as {
    input_ids: number[][];
    attention_mask: number[][];
  };
  const [b, t] = [input_ids.length, input_ids[0]!.length];
  const ids = tensor(Int32Array.from(input_ids.flat()), [b, t], { dtype: "i32", device });
  const mask = tensor(Int32Array.from(attention_mask.flat()), [b, t], { dtype: "i32", device });
  return { ids, mask, b, t };
}

for (const device of backends) {
  Deno.test({
    name:
      `UBMoE routed all to expert 0 is the base model, all to expert 1 the base with the bi MLPs, on ${device.name}`,
    ignore: !haveGolden,
    fn: () =>
      scopeAsync(async () => {
        const { ids, mask, b, t } = await goldenBatch(device);
        // top-1 with norm_topk_prob: the chosen expert's weight is p/p = 1 exactly
        const m = await tinyUbmoe(device, 1, true);
        const layers = m.config.numHiddenLayers;
        const all = (x: number) =>
          Array.from({ length: layers }, () => new Int32Array(b * t).fill(x));
        const v = m.config.vocabSize;
        const tol = { atol: 1e-5, rtol: 1e-5 };
        const baseLogits = await decoder(m.base.params, ids, m.base.config, { attentionMask: mask })
          .logits!.data();
        const to0 = decoder(m.params, ids, m.config, { attentionMask: mask, routing: all(0) });
        assertClose(await to0.logits!.data(), baseLogits, tol, "all to expert 0 vs base", [
          b,
          t,
          v,
        ]);
        const biDense: QwenParams = {
          ...m.base.params,
          model: {
            ...m.base.params.model,
            layers: m.base.params.model.layers.map((l, i) => ({ ...l, mlp: m.biMlps[i]! })),
          },
        };
        const biLogits = await decoder(biDense, ids, m.base.config, { attentionMask: mask })
          .logits!.data();
        const to1 = decoder(m.params, ids, m.config, { attentionMask: mask, routing: all(1) });
        assertClose(await to1.logits!.data(), biLogits, tol, "all to expert 1 vs bi MLPs", [
          b,
          t,
          v,
        ]);
        // the two experts differ, so the comparison above can fail
        assert(
          baseLogits.some((x, i) => Math.abs(x - biLogits[i]!) > 1e-2),
          "the bi MLPs give the base's logits",
        );
        // the router output is returned per layer with the decisions used
        assertEquals(to1.router!.probs.length, layers);
        assertDeepEqual(to1.router!.decisions.map((d) => [...d]), all(1).map((d) => [...d]));
        assertDeepEqual([...to1.router!.probs[0]!.shape], [b * t, 2]);
      }),
  });

  Deno.test({
    name:
      `decoderAsync() equals decoder() with the routing it returned, bit for bit, on ${device.name}`,
    ignore: !haveGolden,
    fn: () =>
      scopeAsync(async () => {
        const { ids, mask, b, t } = await goldenBatch(device);
        for (const [k, norm] of [[1, false], [2, false], [2, true]] as const) {
          const m = await tinyUbmoe(device, k, norm);
          const a = await decoderAsync(m.params, ids, m.config, { attentionMask: mask });
          const decisions = a.router!.decisions;
          assertEquals(decisions.length, m.config.numHiddenLayers);
          for (const [l, p] of a.router!.probs.entries()) {
            assertDeepEqual(
              [...decisions[l]!],
              [...topKExperts(await p.data(), b * t, 2, k)],
              `layer ${l}: decisions are not the top-${k} of the probabilities`,
            );
          }
          // with top-1 both experts must be in use, or the check says little
          if (k === 1) {
            const used = new Set(decisions.flatMap((d) => [...d]));
            assertEquals(used.size, 2, `top-1 routing uses only expert ${[...used]}`);
          }
          const s = decoder(m.params, ids, m.config, { attentionMask: mask, routing: decisions });
          assertDeepEqual(
            await s.logits!.data(),
            await a.logits!.data(),
            `top-${k} (norm ${norm}) logits differ`,
          );
        }
      }),
  });
}

Deno.test({
  name: "decoder() on a mixture-of-experts model without options.routing says what to pass",
  ignore: !haveGolden,
  fn: () =>
    scopeAsync(async () => {
      const device = backends[0]!;
      const { ids, mask } = await goldenBatch(device);
      const m = await tinyUbmoe(device, 1, false);
      assertThrows(
        () => decoder(m.params, ids, m.config, { attentionMask: mask }),
        /^Error: decoder: layer 0 is a mixture of experts: pass options\.routing \(or use decoderAsync\)$/,
      );
    }),
});

// ---- config.json ------------------------------------------------------------------------

const denseRaw = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 384,
  hidden_size: 64,
  intermediate_size: 176,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 128,
  tie_word_embeddings: true,
};

Deno.test("parseQwen2Config() reads num_experts with Qwen2-MoE's defaults", () => {
  assertEquals(parseQwen2Config(denseRaw).moe, undefined);
  assertEquals(parseQwen2Config({ ...denseRaw, num_experts: null }).moe, undefined);
  assertDeepEqual(parseQwen2Config({ ...denseRaw, num_experts: 2 }).moe, {
    numExperts: 2,
    numExpertsPerTok: 1,
    normTopkProb: false,
    routerAuxLossCoef: 0,
  });
  assertDeepEqual(
    parseQwen2Config({
      ...denseRaw,
      model_type: "ubmoe_qwen2",
      num_experts: 2,
      num_experts_per_tok: 2,
      norm_topk_prob: true,
      router_aux_loss_coef: 0.01,
      shared_expert_intermediate_size: 0,
    }).moe,
    { numExperts: 2, numExpertsPerTok: 2, normTopkProb: true, routerAuxLossCoef: 0.01 },
  );
});

Deno.test("parseQwen2Config() rejects bad MoE fields in one line naming the field", () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ num_experts: 2, num_experts_per_tok: 3 }, "num_experts_per_tok", /1\.\.2, got 3/],
    [{ num_experts: 2, num_experts_per_tok: 0 }, "num_experts_per_tok", /got 0/],
    [{ num_experts: 2, num_experts_per_tok: 1.5 }, "num_experts_per_tok", /got 1\.5/],
    [{ num_experts: 0 }, "num_experts", /positive integer, got 0/],
    [{ num_experts: "2" }, "num_experts", /positive integer, got "2"/],
    [{ num_experts: 2, norm_topk_prob: "yes" }, "norm_topk_prob", /true or false/],
    [{ num_experts: 2, router_aux_loss_coef: -1 }, "router_aux_loss_coef", /got -1/],
    [
      { num_experts: 2, shared_expert_intermediate_size: 64 },
      "shared_expert_intermediate_size",
      /not supported/,
    ],
  ];
  for (const [extra, field, what] of cases) {
    let message = "";
    try {
      parseQwen2Config({ ...denseRaw, ...extra }, "m/config.json");
    } catch (e) {
      assert(e instanceof ConfigError, `${JSON.stringify(extra)}: ${e}`);
      message = e.message;
    }
    assert(message !== "", `${JSON.stringify(extra)} was accepted`);
    assert(!message.includes("\n"), message);
    assert(message.startsWith(`m/config.json: field '${field}' `), message);
    assert(what.test(message), message);
  }
});

Deno.test("expectedShapes() of an MoE config lists the router and every expert instead of the MLP", () => {
  const dense = expectedShapes(parseQwen2Config(denseRaw));
  const moe = expectedShapes(parseQwen2Config({ ...denseRaw, num_experts: 2 }));
  const p = "model.layers.1.mlp.";
  assertDeepEqual(moe.get(`${p}gate.weight`), [2, 64]);
  for (const e of [0, 1]) {
    assertDeepEqual(moe.get(`${p}experts.${e}.gate_proj.weight`), [176, 64]);
    assertDeepEqual(moe.get(`${p}experts.${e}.up_proj.weight`), [176, 64]);
    assertDeepEqual(moe.get(`${p}experts.${e}.down_proj.weight`), [64, 176]);
  }
  assert(!moe.has(`${p}gate_proj.weight`) && !moe.has(`${p}experts.2.up_proj.weight`));
  // everything else is the dense model's
  const mlpNames = [...dense.keys()].filter((n) => n.includes(".mlp."));
  assertEquals(mlpNames.length, 3 * 2);
  assertEquals(moe.size, dense.size - 3 * 2 + (1 + 2 * 3) * 2);
  for (const [name, shape] of dense) {
    if (!name.includes(".mlp.")) assertDeepEqual(moe.get(name), shape, name);
  }
});
