// Pre-training data: the Brown Corpus as one token stream (documents joined with
// <|endoftext|>), cut into packed sequences of a fixed length, visited in a seeded order that
// depends only on (seed, step) — so a resumed run sees exactly the batches an uninterrupted one
// would.
import { brownDocuments, type BrownSplit, documentText } from "./corpus/brown.ts";
import { foldIn, Rng } from "../tensor/random.ts";
import type { QwenTokenizer } from "../qwen/tokenizer.ts";

/** The separator written after every document. */
export const endOfText = "<|endoftext|>";

/** Token ids of a Brown split: each document's text followed by <|endoftext|>, corpus order. */
export async function brownTokenStream(
  tokenizer: QwenTokenizer,
  split: BrownSplit,
): Promise<Int32Array> {
  const eot = tokenizer.tokenId(endOfText);
  if (eot === undefined) throw new Error(`${tokenizer.dir}: tokenizer has no ${endOfText} token`);
  const ids: number[] = [];
  for (const doc of await brownDocuments(split)) {
    for (const id of tokenizer.encode(documentText(doc))) ids.push(id);
    ids.push(eot);
  }
  return Int32Array.from(ids);
}

/** Fixed-length sequences cut from a token stream (the tail shorter than `seqLen` is dropped). */
export class PackedSequences {
  readonly count: number;
  readonly #perms = new Map<number, Uint32Array>();

  constructor(readonly stream: Int32Array, readonly seqLen: number, readonly seed: number) {
    this.count = Math.floor(stream.length / seqLen);
    if (this.count === 0) {
      throw new Error(
        `pretrain: ${stream.length} tokens are fewer than one ${seqLen}-token sequence`,
      );
    }
  }

  /** Sequence `i` in stream order. */
  sequence(i: number): Int32Array {
    return this.stream.subarray(i * this.seqLen, (i + 1) * this.seqLen);
  }

  /**
   * The `batch` sequences of optimizer step `step` ([B·L] ids, row-major): sample k = step·B + j
   * is sequence perm_e[k mod n] of epoch e = ⌊k / n⌋, each epoch a fresh seeded shuffle.
   */
  batchAt(step: number, batch: number): Int32Array {
    const out = new Int32Array(batch * this.seqLen);
    for (let j = 0; j < batch; j++) {
      const k = step * batch + j;
      const epoch = Math.floor(k / this.count);
      out.set(this.sequence(this.#permutation(epoch)[k % this.count]!), j * this.seqLen);
    }
    return out;
  }

  /** Fisher–Yates shuffle of 0..n−1 seeded by (seed, epoch). */
  #permutation(epoch: number): Uint32Array {
    let perm = this.#perms.get(epoch);
    if (perm) return perm;
    perm = Uint32Array.from({ length: this.count }, (_, i) => i);
    const rng = new Rng(foldIn(this.seed, epoch));
    for (let i = perm.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    this.#perms.set(epoch, perm);
    return perm;
  }
}
