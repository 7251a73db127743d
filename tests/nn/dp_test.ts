// DP (DESIGN 3.4) against the golden float64 reference, the explicit L×L definition, and its
// analytic cases.
import { bidirectional, causal } from "../../nn/masks.ts";
import { dpFromMatrix, dpFromStats } from "../../nn/dp.ts";
import { loadQwen } from "../../qwen/checkpoint.ts";
import { decoder } from "../../qwen/decoder.ts";
import { tensor } from "../../tensor/create.ts";
import { dpStats } from "../../tensor/ops/dp_stats.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import fc from "fast-check";
import { parseQwen2Config } from "../../qwen/config.ts";
import { initQwenParams } from "../../qwen/init.ts";
import { assert } from "../assert.ts";
import { assertProperty } from "../fc.ts";
import {
  goldenBackends,
  goldenDir,
  haveGolden,
  readExpected,
  readExpectedJson,
  readTolerances,
} from "../golden.ts";

const devices = goldenBackends;
const tol = haveGolden ? await readTolerances() : {};

function close(what: string, got: number, want: number, bound: number) {
  assert(Math.abs(got - want) <= bound, `${what}: ${got} vs ${want} (bound ${bound})`);
}

for (const fixture of ["tiny-f32", "tiny-bf16"]) {
  for (const [device, factor] of devices) {
    Deno.test({
      name: `DP of ${fixture} matches the golden values and matrix on ${device.name}`,
      ignore: !haveGolden,
      fn: () =>
        scopeAsync(async () => {
          const model = await loadQwen(`${goldenDir}${fixture}`, device);
          const json = (await readExpectedJson(fixture)).dp;
          const exp = await readExpected(fixture);
          for (
            const [name, variant] of [["causal", causal], ["bidirectional", bidirectional]] as const
          ) {
            const key = name === "causal" ? "causal" : "bidir";
            const per = json[name].per_sample as {
              dp_m: number;
              dp_b: number;
              dp_a: number;
              length: number;
            }[];
            const stored = exp.get(`dp.${key}.values`)!.values;
            const sums = { dpM: 0, dpB: 0, dpA: 0 };
            for (const [k, ids] of (json.input_ids as number[][][]).entries()) {
              const x = tensor(Int32Array.from(ids.flat()), [1, ids.flat().length], { device });
              const wantMatrix = ids.flat().length === json.matrix_length;
              const out = decoder(model.params, x, model.config, {
                mask: variant,
                dp: "only",
                dpMatrices: wantMatrix,
              });
              const [dp] = await dpFromStats(out.dpStats!, [ids.flat().length]);
              close(
                `${name} sample ${k} DP-M`,
                dp!.values.dpM,
                per[k]!.dp_m,
                tol.dp_values! * factor,
              );
              close(
                `${name} sample ${k} DP-B`,
                dp!.values.dpB,
                per[k]!.dp_b,
                tol.dp_values! * factor,
              );
              close(
                `${name} sample ${k} DP-A`,
                dp!.values.dpA,
                per[k]!.dp_a,
                tol.dp_values! * factor,
              );
              close(
                `${name} sample ${k} stored DP-M`,
                dp!.values.dpM,
                stored[k * 3]!,
                tol.dp_values! * factor + 1e-7,
              );
              sums.dpM += dp!.values.dpM;
              sums.dpB += dp!.values.dpB;
              sums.dpA += dp!.values.dpA;
              if (wantMatrix) {
                // A = mean over layers of the per-layer head means
                const total = out.dpMatrices!.reduce((acc, m) => add(acc, m));
                const a = Array.from(await total.data(), (v) => v / out.dpMatrices!.length);
                const ref = exp.get(`dp.${key}.attn_avg`)!.values;
                const err = a.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i]!)), 0);
                assert(err <= tol.dp_matrix! * factor, `${name} attn_avg error ${err}`);
                const fromMatrix = dpFromMatrix(a, json.matrix_length);
                close("DP from the explicit matrix", fromMatrix.dpA, dp!.values.dpA, 1e-6);
              }
            }
            const n = per.length;
            const x100 = json[name].dataset_x100;
            close(
              `${name} dataset DP-M ×100`,
              (sums.dpM / n) * 100,
              x100.dp_m,
              tol.dp_values! * factor * 100,
            );
            close(
              `${name} dataset DP-A ×100`,
              (sums.dpA / n) * 100,
              x100.dp_a,
              tol.dp_values! * factor * 100,
            );
          }
        }),
    });
  }
}

for (const [device] of devices) {
  Deno.test(`dpStats() of constant q and k gives the uniform values on ${device.name}`, () =>
    scopeAsync(async () => {
      for (const l of [1, 2, 7, 33]) {
        const q = tensor(new Float32Array(2 * l * 4).fill(0.5), [1, 2, l, 4], { device });
        const [dp] = await dpFromStats([dpStats(q, q)], [l]);
        close(`L=${l} DP-M`, dp!.values.dpM, 1 / l, 1e-6);
        close(`L=${l} DP-B`, dp!.values.dpB, (l - 1) / (2 * l), 1e-6);
        close(`L=${l} DP-A`, dp!.values.dpA, (l - 1) / (2 * l), 1e-6);
      }
    }));
}

Deno.test("DP-M + DP-B + DP-A = 1 for random models and lengths; a 1-token sample has DP-M = 1", async () => {
  await assertProperty(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 1000 }),
      fc.integer({ min: 1, max: 24 }),
      fc.constantFrom(causal, bidirectional),
      async (seed, length, variant) => {
        await scopeAsync(async () => {
          const config = parseQwen2Config({
            vocab_size: 50,
            hidden_size: 16,
            intermediate_size: 24,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 64,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
          });
          const params = initQwenParams(config, seed, referenceDevice, 0.5);
          const ids = Int32Array.from({ length }, (_, i) => (seed * 7 + i * 13) % 50);
          const out = decoder(
            params,
            tensor(ids, [1, length], { device: referenceDevice }),
            config,
            {
              mask: variant,
              dp: "only",
            },
          );
          const [dp] = await dpFromStats(out.dpStats!, [length]);
          const { dpM, dpB, dpA } = dp!.values;
          close("sum", dpM + dpB + dpA, 1, 1e-6);
          if (length === 1) close("DP-M of one token", dpM, 1, 1e-7);
          assert(dpM >= 0 && dpB >= 0 && dpA >= 0);
        });
      },
    ),
    15,
  );
});
