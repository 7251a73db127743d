// Sentence embeddings as the paper's train_bi.py makes them (DESIGN 3.5): the text inside the
// prompt `The representative word for sentence {text} is:"`, a forward under the
// bidirectional mask, mean pooling of the final-norm hidden states over the real tokens.
import { bidirectional, type MaskVariant } from "../nn/masks.ts";
import { meanPool } from "../nn/losses.ts";
import { tensor } from "../tensor/create.ts";
import { gather } from "../tensor/ops/gather.ts";
import { concat } from "../tensor/ops/layout.ts";
import type { Device } from "../tensor/device.ts";
import { scope } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Qwen2Config } from "./config.ts";
import type { QwenParams } from "./checkpoint.ts";
import { decoder } from "./decoder.ts";
import type { QwenTokenizer } from "./tokenizer.ts";

/** The paper's prompt (AnglE's `Prompts.A`-style template used by train_bi.py). */
export const embeddingPrompt = 'The representative word for sentence {text} is:"';

/** The prompt with the text filled in. */
export function applyPrompt(text: string, template = embeddingPrompt): string {
  return template.replace("{text}", text);
}

/**
 * The sentence clean-up of the paper's STS evaluation (PromptEOL's batcher, which BeLLM and
 * the paper reuse): a `.` is added unless the sentence ends in `. ? " '`, double quotes
 * become single quotes, and a final `?` becomes `.`.
 */
export function cleanSentence(sentence: string): string {
  let s = sentence.trim();
  if (s.length > 0 && !`.?"'`.includes(s[s.length - 1]!)) s += ".";
  s = s.replaceAll('"', "'");
  if (s.endsWith("?")) s = s.slice(0, -1) + ".";
  return s;
}

/** Token ids of one text inside the prompt, cut to `maxTokens` (right truncation). */
export function promptIds(tokenizer: QwenTokenizer, text: string, maxTokens: number): number[] {
  return tokenizer.encode(applyPrompt(text)).slice(0, maxTokens);
}

/**
 * Right-padded ids and attention mask [B, T] (pad id 0, never attended); T is the longest
 * row rounded up to `multiple`.
 */
export function padRows(
  rows: readonly (readonly number[])[],
  device: Device,
  multiple = 1,
): { ids: Tensor; mask: Tensor } {
  const longest = Math.max(1, ...rows.map((r) => r.length));
  const b = rows.length, t = Math.ceil(longest / multiple) * multiple;
  const ids = new Int32Array(b * t), mask = new Int32Array(b * t);
  rows.forEach((r, i) => {
    ids.set(r, i * t);
    mask.fill(1, i * t, i * t + r.length);
  });
  return {
    ids: tensor(ids, [b, t], { dtype: "i32", device }),
    mask: tensor(mask, [b, t], { dtype: "i32", device }),
  };
}

/** Mean-pooled final-norm hidden states [B, H] of a right-padded batch. */
export function sentenceEmbeddings(
  params: QwenParams,
  ids: Tensor,
  attentionMask: Tensor,
  config: Qwen2Config,
  mask: MaskVariant = bidirectional,
): Tensor {
  const { lastHiddenState } = decoder(params, ids, config, {
    mask,
    attentionMask,
    logits: false,
    keepCache: false,
  });
  return meanPool(lastHiddenState, attentionMask);
}

/**
 * Embeddings [B, H] of token rows of different lengths, in the rows' order, computed in
 * groups of `groupRows` rows of similar length, each padded only to its own longest row
 * (rounded up to `multiple`). Every row's forward is independent of the others under a
 * row-wise mask, so this is one padded batch's result with far less padding: a shuffled
 * batch's longest row is often 2–3× its mean. `embed` gets each group's padded ids and mask
 * and the group's index (e.g. to seed its dropout).
 */
export function groupedEmbeddings(
  rows: readonly (readonly number[])[],
  device: Device,
  embed: (ids: Tensor, mask: Tensor, group: number) => Tensor,
  { groupRows = 32, multiple = 16 }: { groupRows?: number; multiple?: number } = {},
): Tensor {
  const order = rows.map((_, i) => i).sort((a, b) => rows[a]!.length - rows[b]!.length);
  const parts: Tensor[] = [];
  for (let start = 0; start < order.length; start += groupRows) {
    const group = order.slice(start, start + groupRows).map((i) => rows[i]!);
    const { ids, mask } = padRows(group, device, multiple);
    parts.push(embed(ids, mask, parts.length));
  }
  if (parts.length === 1 && order.every((i, k) => i === k)) return parts[0]!;
  const sorted = parts.length === 1 ? parts[0]! : concat(parts, 0);
  // row i of the result is row position[i] of the sorted embeddings
  const position = new Int32Array(rows.length);
  order.forEach((row, k) => position[row] = k);
  return gather(sorted, tensor(position, [rows.length], { dtype: "i32", device }));
}

/** Options of `embedTexts`. */
export interface EmbedOptions {
  /** Rows per forward pass (default 32). */
  batchSize?: number;
  /** Longest prompt in tokens (default 1024). */
  maxTokens?: number;
  /** Attention mask (default bidirectional, as the paper trains and evaluates). */
  mask?: MaskVariant;
  /** Called after each batch with the texts done so far. */
  onProgress?: (done: number) => void;
}

/**
 * Embeddings of many texts, batched by similar length; returned in input order, one
 * Float32Array of H values per text.
 */
export async function embedTexts(
  params: QwenParams,
  config: Qwen2Config,
  tokenizer: QwenTokenizer,
  texts: readonly string[],
  device: Device,
  options: EmbedOptions = {},
): Promise<Float32Array[]> {
  const { batchSize = 32, maxTokens = 1024, mask = bidirectional } = options;
  const rows = texts.map((t) => promptIds(tokenizer, t, maxTokens));
  const order = rows.map((_, i) => i).sort((a, b) => rows[a]!.length - rows[b]!.length);
  const out: Float32Array[] = new Array(texts.length);
  const h = config.hiddenSize;
  for (let start = 0; start < order.length; start += batchSize) {
    const chunk = order.slice(start, start + batchSize);
    const pooled = scope(() => {
      const { ids, mask: attentionMask } = padRows(chunk.map((i) => rows[i]!), device);
      return sentenceEmbeddings(params, ids, attentionMask, config, mask);
    });
    const values = await pooled.data();
    pooled.dispose();
    chunk.forEach((i, j) => out[i] = Float32Array.from(values.subarray(j * h, (j + 1) * h)));
    options.onProgress?.(Math.min(start + batchSize, order.length));
  }
  return out;
}

/** Cosine similarity of two vectors (0 when either is zero). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}
