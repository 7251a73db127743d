// Golden parity (../shared/golden/README.md): the decoder, the causal LM loss and its
// gradients, bidirectional hidden states, mean pooling and the in-batch-negative loss with
// its gradients, against a float64 PyTorch reference. The reference backend must meet the
// float32 tolerances; WebGPU 10× them (README §6).
import { valueAndGrad } from "../../autograd/grad.ts";
import { bidirectional, causal } from "../../nn/masks.ts";
import { causalLmLoss, inBatchNegativeLoss, infoNceLoss, meanPool } from "../../nn/losses.ts";
import { namesFromTree } from "../../nn/params.ts";
import { loadQwen, type QwenModel, type QwenParams } from "../../qwen/checkpoint.ts";
import { decoder } from "../../qwen/decoder.ts";
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert } from "../assert.ts";
import {
  type Expected,
  goldenBackends,
  goldenDir,
  haveGolden,
  readExpected,
  readExpectedJson,
  readTolerances,
} from "../golden.ts";

const devices = goldenBackends;
const tol = haveGolden ? await readTolerances() : {};

/** max |x − ref| over real positions [B, T, …] (rows of `mask`), or over everything. */
async function maxErr(
  x: Tensor,
  ref: Expected,
  mask?: number[][],
  innerSize = 1,
): Promise<{ err: number; scale: number }> {
  const v = await x.data();
  let err = 0, scale = 0;
  const t = mask?.[0]?.length ?? 0;
  for (let i = 0; i < ref.values.length; i++) {
    if (mask) {
      const pos = Math.floor(i / innerSize);
      if (mask[Math.floor(pos / t)]![pos % t] === 0) continue;
    }
    err = Math.max(err, Math.abs(v[i]! - ref.values[i]!));
    scale = Math.max(scale, Math.abs(ref.values[i]!));
  }
  return { err, scale };
}

function check(what: string, got: { err: number; scale: number }, bound: number, relative = false) {
  const limit = relative ? bound * got.scale : bound;
  assert(
    got.err <= limit,
    `${what}: max error ${got.err.toExponential(3)} exceeds ${limit.toExponential(3)}`,
  );
}

function ids(rows: number[][], device: Device): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], {
    dtype: "i32",
    device,
  });
}

for (const fixture of ["tiny-f32", "tiny-f32-sharded", "tiny-bf16"]) {
  for (const [device, factor] of devices) {
    const name =
      `decoder() on ${fixture} matches the golden logits, hidden states and LM loss on ${device.name}`;
    Deno.test({
      name,
      ignore: !haveGolden,
      fn: () =>
        scopeAsync(async () => {
          const expectedFixture = fixture === "tiny-f32-sharded" ? "tiny-f32" : fixture;
          const model = await loadQwen(`${goldenDir}${fixture}`, device);
          const exp = await readExpected(expectedFixture);
          const json = await readExpectedJson(expectedFixture);
          const { input_ids, attention_mask } = json.batch as {
            input_ids: number[][];
            attention_mask: number[][];
          };
          const inputIds = ids(input_ids, device), mask = ids(attention_mask, device);
          const h = model.config.hiddenSize,
            v = model.config.vocabSize,
            layers = model.config.numHiddenLayers;
          const out = decoder(model.params, inputIds, model.config, {
            attentionMask: mask,
            outputHiddenStates: true,
          });
          check(
            "logits",
            await maxErr(out.logits!, exp.get("causal.logits")!, attention_mask, v),
            tol.logits! * factor,
          );
          const hs = exp.get("causal.hidden_states")!;
          const per = hs.values.length / (layers + 1);
          for (let i = 0; i <= layers; i++) {
            const ref = {
              shape: hs.shape.slice(1),
              values: hs.values.subarray(i * per, (i + 1) * per),
            };
            check(
              `hidden_states[${i}]`,
              await maxErr(out.hiddenStates![i]!, ref, attention_mask, h),
              tol.hidden_states! * factor,
            );
          }
          check(
            "last_layer_prenorm",
            await maxErr(
              out.lastLayerPrenorm,
              exp.get("causal.last_layer_prenorm")!,
              attention_mask,
              h,
            ),
            tol.hidden_states! * factor,
          );
          const loss = await causalLmLoss(out.logits!, inputIds, mask).item();
          check("lm_loss", { err: Math.abs(loss - json.lm_loss), scale: 1 }, tol.lm_loss! * factor);

          const bidir = decoder(model.params, inputIds, model.config, {
            attentionMask: mask,
            mask: bidirectional,
            logits: false,
          });
          const bhs = exp.get("bidir.hidden_states")!;
          const last = { shape: bhs.shape.slice(1), values: bhs.values.subarray(layers * per) };
          check(
            "bidir last hidden",
            await maxErr(bidir.lastHiddenState, last, attention_mask, h),
            tol.hidden_states! * factor,
          );
          check(
            "bidir.embeddings",
            await maxErr(meanPool(bidir.lastHiddenState, mask), exp.get("bidir.embeddings")!),
            tol.embeddings! * factor,
          );
          void causal;
        }),
    });
  }
}

/** Gradients of the LM loss and of the contrastive loss (tiny-f32 only, as stored). */
for (const [device, factor] of devices) {
  Deno.test({
    name: `the LM loss and in-batch-negative loss gradients match the golden on ${device.name}`,
    ignore: !haveGolden,
    fn: () =>
      scopeAsync(async () => {
        const model: QwenModel = await loadQwen(`${goldenDir}tiny-f32`, device);
        const exp = await readExpected("tiny-f32");
        const json = await readExpectedJson("tiny-f32");
        const { input_ids, attention_mask } = json.batch;
        const inputIds = ids(input_ids, device), mask = ids(attention_mask, device);
        const lmLoss = (p: QwenParams) =>
          causalLmLoss(
            decoder(p, inputIds, model.config, { attentionMask: mask }).logits!,
            inputIds,
            mask,
          );
        const [loss, grads] = valueAndGrad(lmLoss)(model.params);
        check(
          "lm_loss",
          { err: Math.abs((await loss.item()) - json.lm_loss), scale: 1 },
          tol.lm_loss! * factor,
        );
        for (const [name, g] of namesFromTree(grads)) {
          check(
            `grad.${name}`,
            await maxErr(g, exp.get(`grad.${name}`)!),
            tol.lm_grads! * factor,
            true,
          );
        }

        const c = json.contrastive;
        const cIds = ids(c.input_ids, device), cMask = ids(c.attention_mask, device);
        const embed = (p: QwenParams) =>
          meanPool(
            decoder(p, cIds, model.config, {
              attentionMask: cMask,
              mask: bidirectional,
              logits: false,
            }).lastHiddenState,
            cMask,
          );
        check(
          "contrastive.embeddings",
          await maxErr(embed(model.params), exp.get("contrastive.embeddings")!),
          tol.embeddings! * factor,
        );
        const [closs, cgrads] = valueAndGrad((p: QwenParams) =>
          inBatchNegativeLoss(embed(p), c.tau)
        )(model.params);
        check(
          "contrastive loss",
          { err: Math.abs((await closs.item()) - c.loss), scale: 1 },
          tol.contrastive_loss! * factor,
        );
        const formatC = await infoNceLoss(embed(model.params), c.tau).item();
        check(
          "format-C (InfoNCE) loss",
          { err: Math.abs(formatC - c.loss_format_c_for_information), scale: 1 },
          tol.contrastive_loss! * factor,
        );
        for (const [name, g] of namesFromTree(cgrads)) {
          if (name === "model.embed_tokens.weight") {
            const rowIds = exp.get("contrastive.grad_row_ids.model.embed_tokens.weight")!.values;
            const rows = exp.get("contrastive.grad_rows.model.embed_tokens.weight")!;
            const full = new Float32Array(g.size);
            const h = model.config.hiddenSize;
            rowIds.forEach((r, i) =>
              full.set(rows.values.subarray(i * h, (i + 1) * h) as Float32Array, r * h)
            );
            check(
              `contrastive.grad.${name}`,
              await maxErr(g, { shape: g.shape as number[], values: full }),
              tol.contrastive_grads! * factor,
              true,
            );
            continue;
          }
          check(
            `contrastive.grad.${name}`,
            await maxErr(g, exp.get(`contrastive.grad.${name}`)!),
            tol.contrastive_grads! * factor,
            true,
          );
        }
      }),
  });
}
