// Generation with a KV cache: the prompt runs once, then one token per step against the
// cached keys and values. Sampling happens on the host from the last position's logits.
import { Rng } from "../tensor/random.ts";
import { tensor } from "../tensor/create.ts";
import { scopeAsync } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { QwenModel } from "./checkpoint.ts";
import { decoderAsync, type KvCache } from "./decoder.ts";

/** How the next token is chosen. temperature 0 = greedy. */
export interface SamplingOptions {
  temperature: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP: number;
  seed: number;
}

/** Options of `generate`. */
export interface GenerateOptions extends Partial<SamplingOptions> {
  maxNewTokens: number;
  /** Token ids that end generation (not yielded). */
  stopIds?: readonly number[];
}

/** Choose a token from logits [V]. */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number {
  const v = logits.length;
  let best = 0;
  for (let i = 1; i < v; i++) if (logits[i]! > logits[best]!) best = i;
  if (options.temperature <= 0) return best;
  let order = Array.from({ length: v }, (_, i) => i);
  if (options.topK > 0 && options.topK < v) {
    order.sort((a, b) => logits[b]! - logits[a]!);
    order = order.slice(0, options.topK);
  }
  const max = logits[best]!;
  let probs = order.map((i) => Math.exp((logits[i]! - max) / options.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (options.topP < 1) {
    const idx = probs.map((_, j) => j).sort((a, b) => probs[b]! - probs[a]!);
    let acc = 0;
    const keep: number[] = [];
    for (const j of idx) {
      keep.push(j);
      acc += probs[j]! / total;
      if (acc >= options.topP) break;
    }
    order = keep.map((j) => order[j]!);
    probs = keep.map((j) => probs[j]!);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.uniform() * total;
  for (let j = 0; j < order.length; j++) {
    r -= probs[j]!;
    if (r <= 0) return order[j]!;
  }
  return order[order.length - 1]!;
}

/**
 * Yield new token ids after `promptIds` until a stop id or `maxNewTokens`.
 * @example
 * for await (const id of generate(model, ids, { maxNewTokens: 32, stopIds: [eos] })) out.push(id);
 */
export async function* generate(
  model: QwenModel,
  promptIds: readonly number[],
  options: GenerateOptions,
): AsyncGenerator<number> {
  const sampling: SamplingOptions = {
    temperature: options.temperature ?? 0,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
    seed: options.seed ?? 0,
  };
  const rng = new Rng(sampling.seed);
  const device = model.params.model.embed_tokens.weight.device;
  const stop = new Set(options.stopIds ?? []);
  let cache: KvCache | undefined;
  let next = [...promptIds];
  try {
    for (let step = 0; step < options.maxNewTokens; step++) {
      const out: { logits: Tensor; cache: KvCache } = await scopeAsync(async () => {
        const ids = tensor(Int32Array.from(next), [1, next.length], { device });
        const r = await decoderAsync(model.params, ids, model.config, {
          cache,
          lastLogitsOnly: true,
        });
        return { logits: r.logits!, cache: r.cache };
      });
      disposeCache(cache);
      cache = out.cache;
      const logits = await out.logits.data();
      out.logits.dispose();
      const token = sampleToken(logits, sampling, rng);
      if (stop.has(token)) return;
      yield token;
      next = [token];
    }
  } finally {
    disposeCache(cache);
  }
}

function disposeCache(cache: KvCache | undefined): void {
  for (const layer of cache?.layers ?? []) {
    layer.k.dispose();
    layer.v.dispose();
  }
}
