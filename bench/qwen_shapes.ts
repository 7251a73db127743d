// Random-weight checkpoints of the real Qwen2.5 configs (0.5B … 14B), for benchmarks and
// memory checks: bf16 weights, sharded as Hugging Face shards them (files of at most 4 GB in
// state-dict order + model.safetensors.index.json), written tensor by tensor in windows so
// generating a 14B takes little memory, plus the tokenizer files. Never committed.
//
//   deno run -A bench/qwen_shapes.ts 7b [DIR]          # writes DIR (default: $TMPDIR/ubmoe-deno-qwen-7b)
//   deno run -A bench/qwen_shapes.ts 14b DIR --sparse  # headers only, data left as holes
import { expectedShapes, parseQwen2Config, type Qwen2Config } from "../qwen/config.ts";
import { f32ToBf16Bits } from "../tensor/dtype.ts";
import { Rng } from "../tensor/random.ts";
import { safetensorsPrefix, writeSafetensors } from "../tensor/safetensors.ts";

/** The sizes of the Qwen2.5 family this generator knows. */
export const qwenSizes = ["0.5b", "1.5b", "3b", "7b", "14b"] as const;
export type QwenSize = typeof qwenSizes[number];

const common = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  hidden_act: "silu",
  attention_dropout: 0.0,
  initializer_range: 0.02,
  max_position_embeddings: 32768,
  rope_theta: 1000000.0,
  torch_dtype: "bfloat16",
  bos_token_id: 151643,
  eos_token_id: 151643,
  use_cache: true,
  use_sliding_window: false,
  sliding_window: 32768,
};

/** The real Qwen2.5 config.json fields of each size (the base models' files). */
export const qwen25Configs: Record<QwenSize, Record<string, unknown>> = {
  "0.5b": {
    ...common,
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    vocab_size: 151936,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    max_window_layers: 21,
  },
  "1.5b": {
    ...common,
    hidden_size: 1536,
    intermediate_size: 8960,
    num_hidden_layers: 28,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    vocab_size: 151936,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    max_window_layers: 21,
  },
  "3b": {
    ...common,
    hidden_size: 2048,
    intermediate_size: 11008,
    num_hidden_layers: 36,
    num_attention_heads: 16,
    num_key_value_heads: 2,
    vocab_size: 151936,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    max_window_layers: 36,
  },
  "7b": {
    ...common,
    hidden_size: 3584,
    intermediate_size: 18944,
    num_hidden_layers: 28,
    num_attention_heads: 28,
    num_key_value_heads: 4,
    vocab_size: 152064,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    max_window_layers: 28,
  },
  "14b": {
    ...common,
    hidden_size: 5120,
    intermediate_size: 13824,
    num_hidden_layers: 48,
    num_attention_heads: 40,
    num_key_value_heads: 8,
    vocab_size: 152064,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
    max_window_layers: 48,
  },
};

/** Hugging Face's `max_shard_size` for the Qwen2.5 repositories' files. */
export const maxShardBytes = 4 * 1000 ** 3;

/** The weights in state-dict order (as `save_pretrained` writes and shards them). */
export function stateDictOrder(config: Qwen2Config): [string, number[]][] {
  const shapes = expectedShapes(config);
  const rank = (name: string): number[] => {
    if (name === "model.embed_tokens.weight") return [0];
    if (name === "model.norm.weight") return [2];
    if (name === "lm_head.weight") return [3];
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name)!;
    const within = [
      "self_attn.q_proj.weight",
      "self_attn.q_proj.bias",
      "self_attn.k_proj.weight",
      "self_attn.k_proj.bias",
      "self_attn.v_proj.weight",
      "self_attn.v_proj.bias",
      "self_attn.o_proj.weight",
      "mlp.gate_proj.weight",
      "mlp.up_proj.weight",
      "mlp.down_proj.weight",
      "input_layernorm.weight",
      "post_attention_layernorm.weight",
    ].indexOf(m[2]!);
    return [1, Number(m[1]), within];
  };
  const cmp = (a: number[], b: number[]) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = (a[i] ?? -1) - (b[i] ?? -1);
      if (d !== 0) return d;
    }
    return 0;
  };
  return [...shapes].sort(([a], [b]) => cmp(rank(a), rank(b)));
}

/** Which tensors go into which file: consecutive state-dict runs of at most `maxBytes`. */
export function shardPlan(
  config: Qwen2Config,
  maxBytes = maxShardBytes,
): { files: { name: string; tensors: [string, number[]][] }[]; totalBytes: number } {
  const groups: [string, number[]][][] = [[]];
  let size = 0, total = 0;
  for (const entry of stateDictOrder(config)) {
    const bytes = entry[1].reduce((a, b) => a * b, 1) * 2;
    if (size + bytes > maxBytes && groups[groups.length - 1]!.length > 0) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1]!.push(entry);
    size += bytes;
    total += bytes;
  }
  const n = groups.length;
  const pad = (i: number) => String(i).padStart(5, "0");
  const files = groups.map((tensors, i) => ({
    name: n === 1 ? "model.safetensors" : `model-${pad(i + 1)}-of-${pad(n)}.safetensors`,
    tensors,
  }));
  return { files, totalBytes: total };
}

/** Where a size's checkpoint lives unless QWEN_SHAPES_DIR says otherwise. */
export function qwenShapeDir(size: QwenSize): string {
  const base = Deno.env.get("QWEN_SHAPES_DIR") ?? Deno.env.get("TMPDIR") ?? "/tmp";
  return `${base}/ubmoe-deno-qwen-${size.replace(".", "")}`;
}

/** Options of `writeQwenShape`. */
export interface ShapeOptions {
  /** Headers only: each file gets its real size with the data left as holes (zeros). */
  sparse?: boolean;
  /** Largest file (default 4 GB, as the Qwen2.5 repositories). */
  maxShardBytes?: number;
  /** config.json fields laid over the size's (tests shrink a model to a few MB with it). */
  configOverride?: Record<string, unknown>;
  log?: (message: string) => void;
}

/** Random bf16 values in windows of at most 32 MiB: a pool copied from at random offsets. */
function* randomBf16(n: number, isNorm: boolean, rng: Rng, pool: Uint16Array) {
  const window = 16 << 20;
  const out = new Uint16Array(Math.min(n, window));
  if (isNorm) out.fill(f32ToBf16Bits(1));
  for (let done = 0; done < n;) {
    const len = Math.min(window, n - done);
    if (!isNorm) {
      for (let at = 0; at < len;) {
        const start = rng.int(pool.length / 2);
        const run = Math.min(len - at, pool.length - start);
        out.set(pool.subarray(start, start + run), at);
        at += run;
      }
    }
    yield out.subarray(0, len);
    done += len;
  }
}

/**
 * Write a random-weight checkpoint of one Qwen2.5 size into `dir` (config.json, shards,
 * index, tokenizer files) unless a complete one is there already; returns `dir`.
 */
export async function writeQwenShape(
  size: QwenSize,
  dir = qwenShapeDir(size),
  options: ShapeOptions = {},
): Promise<string> {
  const log = options.log ?? ((m: string) => console.error(m));
  const json = { ...qwen25Configs[size], ...options.configOverride };
  const config = parseQwen2Config(json);
  const plan = shardPlan(config, options.maxShardBytes);
  const marker = `${dir}/.complete${options.sparse ? "-sparse" : ""}`;
  if (await Deno.stat(marker).then(() => true, () => false)) return dir;
  await Deno.mkdir(dir, { recursive: true });
  log(
    `qwen-shapes: writing a ${
      options.sparse ? "sparse " : ""
    }random bf16 Qwen2.5-${size.toUpperCase()}-shaped${
      options.configOverride ? " (config overridden)" : ""
    } checkpoint (${
      (plan.totalBytes / 2 ** 30).toFixed(2)
    } GiB in ${plan.files.length} files) to ${dir}…`,
  );
  const rng = new Rng(2025);
  const pool = new Uint16Array(1 << 20);
  for (let i = 0; i < pool.length; i++) pool[i] = f32ToBf16Bits((rng.uniform() * 2 - 1) * 0.035);
  const weightMap: Record<string, string> = {};
  for (const file of plan.files) {
    const specs = Object.fromEntries(
      file.tensors.map(([name, shape]) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const isNorm = name.endsWith("layernorm.weight") || name === "model.norm.weight";
        return [name, {
          dtype: "BF16" as const,
          shape,
          data: () => randomBf16(n, isNorm, rng, pool),
        }];
      }),
    );
    const path = `${dir}/${file.name}`;
    if (options.sparse) {
      const { prefix, dataBytes } = safetensorsPrefix(specs);
      await Deno.writeFile(path, prefix);
      await Deno.truncate(path, prefix.length + dataBytes);
    } else await writeSafetensors(path, specs);
    for (const [name] of file.tensors) weightMap[name] = file.name;
    log(`qwen-shapes: wrote ${path}`);
  }
  if (plan.files.length > 1) {
    const index = { metadata: { total_size: plan.totalBytes }, weight_map: weightMap };
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify(index, null, 2) + "\n",
    );
  }
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(json, null, 2) + "\n");
  await copyTokenizer(dir, log);
  await Deno.writeTextFile(marker, "");
  return dir;
}

/** The Qwen2.5 tokenizer files, from the repository's copy (else ../shared), if found. */
async function copyTokenizer(dir: string, log: (m: string) => void): Promise<void> {
  const candidates = ["../tests/fixtures/tokenizer/qwen2.5/", "../../shared/tokenizer/qwen2.5/"]
    .map((p) => new URL(p, import.meta.url).pathname);
  for (const src of candidates) {
    const ok = await Deno.stat(`${src}tokenizer.json`).then(() => true, () => false);
    if (!ok) continue;
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      await Deno.copyFile(`${src}${f}`, `${dir}/${f}`).catch(() => {});
    }
    return;
  }
  log("qwen-shapes: no Qwen2.5 tokenizer files found; the checkpoint has no tokenizer");
}

if (import.meta.main) {
  const [size, dir, ...rest] = Deno.args;
  if (!qwenSizes.includes(size as QwenSize)) {
    console.error(
      `qwen-shapes: error: usage: qwen_shapes.ts ${qwenSizes.join("|")} [DIR] [--sparse]`,
    );
    Deno.exit(2);
  }
  const sparse = rest.includes("--sparse") || dir === "--sparse";
  const out = dir && dir !== "--sparse" ? dir : qwenShapeDir(size as QwenSize);
  console.log(await writeQwenShape(size as QwenSize, out, { sparse }));
}
