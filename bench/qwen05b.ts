// A Qwen2.5-0.5B-shaped checkpoint with random bf16 weights (real shapes, vocab 151936), for
// benchmarks and memory checks. Generated on first use into a temporary directory; never
// committed. `deno run -A bench/qwen05b.ts [DIR]` makes it by hand.
import { expectedShapes, parseQwen2Config } from "../qwen/config.ts";
import { f32ToBf16Bits } from "../tensor/dtype.ts";
import { Rng } from "../tensor/random.ts";
import { writeSafetensors } from "../tensor/safetensors.ts";

/** The real Qwen2.5-0.5B config.json fields. */
export const qwen05bConfig = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  hidden_act: "silu",
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  vocab_size: 151936,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  bos_token_id: 151643,
  eos_token_id: 151643,
  use_sliding_window: false,
  sliding_window: 32768,
  max_window_layers: 21,
};

/** Where the checkpoint lives unless QWEN05B_DIR says otherwise. */
export function qwen05bDir(): string {
  return Deno.env.get("QWEN05B_DIR") ?? `${Deno.env.get("TMPDIR") ?? "/tmp"}/ubmoe-deno-qwen05b`;
}

/** Make the checkpoint in `dir` unless it is already there; returns `dir`. */
export async function ensureQwen05b(
  dir = qwen05bDir(),
  log = (m: string) => console.error(m),
): Promise<string> {
  const done = await Deno.stat(`${dir}/model.safetensors`).then(() => true, () => false);
  if (done) return dir;
  log(`qwen05b: writing a random bf16 Qwen2.5-0.5B-shaped checkpoint to ${dir} (once)…`);
  await Deno.mkdir(dir, { recursive: true });
  const config = parseQwen2Config(qwen05bConfig);
  // A pool of random bf16 values, copied from at random offsets: fast, and random enough for
  // benchmarks (the weights' values do not change the work done).
  const rng = new Rng(2025);
  const pool = new Uint16Array(1 << 20);
  for (let i = 0; i < pool.length; i++) pool[i] = f32ToBf16Bits((rng.uniform() * 2 - 1) * 0.035);
  const tensors: Record<string, { dtype: "BF16"; shape: number[]; data: () => Uint16Array }> = {};
  for (const [name, shape] of expectedShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = name.endsWith("layernorm.weight") || name === "model.norm.weight";
    tensors[name] = {
      dtype: "BF16",
      shape,
      data: () => {
        const out = new Uint16Array(n);
        if (isNorm) return out.fill(f32ToBf16Bits(1));
        for (let at = 0; at < n;) {
          const start = rng.int(pool.length / 2);
          const len = Math.min(n - at, pool.length - start);
          out.set(pool.subarray(start, start + len), at);
          at += len;
        }
        return out;
      },
    };
  }
  await writeSafetensors(`${dir}/model.safetensors`, tensors);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(qwen05bConfig, null, 2) + "\n");
  const tok = new URL("../../shared/tokenizer/qwen2.5/", import.meta.url).pathname;
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${tok}${f}`, `${dir}/${f}`).catch(() =>
      log(`qwen05b: ${tok}${f} not found; no tokenizer`)
    );
  }
  return dir;
}

if (import.meta.main) console.log(await ensureQwen05b(Deno.args[0]));
