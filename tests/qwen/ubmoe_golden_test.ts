// Golden parity of the UBMoE block (../shared/golden/README.md §3.6, §4.11): top-1 and top-2
// logits, the router probabilities of every layer, the LM losses, and the top-1 router
// gradients with everything else frozen, on tiny-f32 + ubmoe.safetensors.
import { valueAndGrad } from "../../autograd/grad.ts";
import { causalLmLoss } from "../../nn/losses.ts";
import { Checkpoint, loadQwen, type QwenParams } from "../../qwen/checkpoint.ts";
import { parseQwen2Config, type Qwen2Config } from "../../qwen/config.ts";
import { decoder, decoderAsync } from "../../qwen/decoder.ts";
import type { ExpertParams } from "../../qwen/moe.ts";
import { assembleUbmoe, withRouters } from "../../qwen/ubmoe.ts";
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert, assertEquals } from "../assert.ts";
import {
  goldenBackends,
  goldenDir,
  haveGolden,
  readExpected,
  readExpectedJson,
  readTolerances,
} from "../golden.ts";

const tol = haveGolden ? await readTolerances() : {};

/** tiny-f32 as a UBMoE model with top-k `k`, experts 1 and routers from ubmoe.safetensors. */
async function goldenUbmoe(device: Device, k: number) {
  const base = await loadQwen(`${goldenDir}tiny-f32`, device);
  using extra = await Checkpoint.open(`${goldenDir}tiny-f32`, "ubmoe");
  const biMlps: ExpertParams[] = [], routers: Tensor[] = [];
  for (let i = 0; i < base.config.numHiddenLayers; i++) {
    const p = `model.layers.${i}.mlp.`;
    const w = async (n: string) => ({ weight: await extra.load(`${p}${n}`, device) });
    biMlps.push({
      gate_proj: await w("experts.1.gate_proj.weight"),
      up_proj: await w("experts.1.up_proj.weight"),
      down_proj: await w("experts.1.down_proj.weight"),
    });
    routers.push((await w("gate.weight")).weight);
  }
  const config: Qwen2Config = parseQwen2Config(
    { ...base.config.raw, num_experts: 2, num_experts_per_tok: k, norm_topk_prob: false },
    "ubmoe config",
  );
  return { params: assembleUbmoe(base.params, biMlps, routers), config, routers };
}

function maxErr(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rowOk: (row: number) => boolean,
  inner: number,
) {
  let err = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    if (!rowOk(Math.floor(i / inner))) continue;
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return { err, scale };
}

/** The fixture's right-padded batch: its rows, sizes, and ids and mask on `device`. */
function goldenBatch(json: Record<string, any>, device: Device) {
  const { input_ids, attention_mask } = json.batch as {
    input_ids: number[][];
    attention_mask: number[][];
  };
  const [b, t] = [input_ids.length, input_ids[0]!.length];
  const i32 = (rows: number[][]) =>
    tensor(Int32Array.from(rows.flat()), [b, t], { dtype: "i32", device });
  return { attention_mask, b, t, ids: i32(input_ids), mask: i32(attention_mask) };
}

for (const [device, factor] of goldenBackends) {
  Deno.test({
    name:
      `UBMoE top-1 and top-2 logits, router probabilities and losses match the golden on ${device.name}`,
    ignore: !haveGolden,
    fn: () =>
      scopeAsync(async () => {
        const exp = await readExpected("tiny-f32");
        const json = await readExpectedJson("tiny-f32");
        const { attention_mask, b, t, ids, mask } = goldenBatch(json, device);
        const real = (pos: number) => attention_mask[Math.floor(pos / t)]![pos % t] === 1;
        for (const k of [1, 2]) {
          const m = await goldenUbmoe(device, k);
          const out = await decoderAsync(m.params, ids, m.config, { attentionMask: mask });
          const v = m.config.vocabSize;
          const logits = maxErr(
            await out.logits!.data(),
            exp.get(`ubmoe.top${k}.logits`)!.values,
            real,
            v,
          );
          assert(
            logits.err <= tol.ubmoe_logits! * factor,
            `top-${k} logits: max error ${logits.err}`,
          );
          const probsWant = exp.get(`ubmoe.top${k}.router_probs`)!.values; // [L, B, T, E]
          for (const [l, p] of out.router!.probs.entries()) {
            const want = probsWant.subarray(l * b * t * 2, (l + 1) * b * t * 2);
            const e = maxErr(await p.data(), want, real, 2);
            assert(
              e.err <= tol.ubmoe_router_probs! * factor,
              `top-${k} layer ${l} router probs: max error ${e.err}`,
            );
          }
          const loss = await causalLmLoss(out.logits!, ids, mask).item();
          const want = json.ubmoe[`top${k}`].lm_loss as number;
          assert(
            Math.abs(loss - want) <= tol.ubmoe_lm_loss! * factor,
            `top-${k} LM loss ${loss} vs ${want}`,
          );
        }
      }),
  });

  Deno.test({
    name:
      `UBMoE top-1 router gradients (everything else frozen) match the golden on ${device.name}`,
    ignore: !haveGolden,
    fn: () =>
      scopeAsync(async () => {
        const exp = await readExpected("tiny-f32");
        const json = await readExpectedJson("tiny-f32");
        const { ids, mask } = goldenBatch(json, device);
        const m = await goldenUbmoe(device, 1);
        const { router } = await decoderAsync(m.params, ids, m.config, {
          attentionMask: mask,
          logits: false,
        });
        const routing = router!.decisions;
        const loss = (routers: Tensor[], params: QwenParams) =>
          causalLmLoss(
            decoder(withRouters(params, routers), ids, m.config, { attentionMask: mask, routing })
              .logits!,
            ids,
            mask,
          );
        const [value, grads] = valueAndGrad(loss)(m.routers, m.params);
        assert(
          Math.abs((await value.item()) - json.ubmoe.top1.lm_loss) <= tol.ubmoe_lm_loss! * factor,
        );
        assertEquals(grads.length, m.config.numHiddenLayers);
        for (const [l, g] of grads.entries()) {
          const want = exp.get(`ubmoe.top1.grad.model.layers.${l}.mlp.gate.weight`)!.values;
          const e = maxErr(await g.data(), want, () => true, 1);
          assert(
            e.err <= tol.ubmoe_router_grads! * factor * e.scale,
            `layer ${l} router grad: max error ${e.err} (scale ${e.scale})`,
          );
        }
      }),
  });
}
