// Attention mask variants (DESIGN 3.2). A variant is one line: a name and a mask expression
// over q, k, n and token arrays. The reference backend evaluates the expression and the
// WebGPU backend compiles it into the fused attention kernel; the registry below makes the
// generic tests cover every variant, so adding one never touches a kernel.
import { always, type MaskBool, type MaskVars, maskVars } from "../tensor/mask.ts";

/** A named attention mask. */
export interface MaskVariant {
  readonly name: string;
  readonly mask: MaskBool;
  /** Token arrays the mask reads (e.g. document ids), in order. */
  readonly tokenArrays: readonly string[];
}

/** Define a variant from a mask expression. */
export function maskVariant(
  name: string,
  build: (vars: MaskVars) => MaskBool,
  tokenArrays: readonly string[] = [],
): MaskVariant {
  return { name, mask: build(maskVars), tokenArrays };
}

/** Key k is allowed iff k ≤ q. */
export const causal = maskVariant("causal", ({ q, k }) => k.le(q));
/** Every key. */
export const bidirectional = maskVariant("bidirectional", () => always);
/** Bidirectional over the first p tokens, causal after. */
export const prefix = (p: number) => maskVariant(`prefix(${p})`, ({ q, k }) => k.lt(p).or(k.le(q)));
/** Causal within a window of w tokens: k ≤ q and q − k < w. */
export const sliding = (w: number) =>
  maskVariant(`sliding(${w})`, ({ q, k }) => k.le(q).and(q.sub(k).lt(w)));
/** Packed documents: k and q in the same document (token array 0 = document id), causal within. */
export const document = maskVariant(
  "document",
  ({ q, k, token }) => token(0, k).eq(token(0, q)).and(k.le(q)),
  ["documentIds"],
);

/** Every registered variant, with example parameters for the generic tests. */
export const maskVariants: readonly MaskVariant[] = [
  causal,
  bidirectional,
  prefix(3),
  sliding(4),
  document,
];

/** A variant by its name: `causal`, `bidirectional`, `prefix(N)`, `sliding(W)`, `document`. */
export function parseMaskVariant(name: string): MaskVariant {
  const m = /^(prefix|sliding)\((\d+)\)$/.exec(name);
  if (m) return m[1] === "prefix" ? prefix(Number(m[2])) : sliding(Number(m[2]));
  const found = [causal, bidirectional, document].find((v) => v.name === name);
  if (!found) {
    throw new Error(
      `unknown mask '${name}': expected causal, bidirectional, prefix(N), sliding(W) or document`,
    );
  }
  return found;
}
