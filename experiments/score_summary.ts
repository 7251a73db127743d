// score's per-row results, perplexity and --json object: one definition that `deno task score`
// and `deno task merge` share, so a merged sharded run gives the single run's bytes.

/** The `format` of score's --json output. */
export const scoreFormat = "ubmoe-deno score/1";

/** One scored row: logprobs[t] = log p(token t+1 | tokens ≤ t); NaN nll_mean below 2 tokens. */
export interface ScoredRow {
  n_tokens: number;
  nll_mean: number;
  logprobs: number[];
}

/** What a score run measured (the head of its JSON). */
export interface ScoreRun {
  /** --model as given: a directory or a Hugging Face repo id. */
  model: string;
  /** The snapshot directory a repo id resolved to. */
  model_dir?: string;
  data: string;
  max_tokens: number;
}

/** A row's summed negative log-likelihood, in token order. */
export function rowNll(logprobs: readonly number[]): number {
  return logprobs.reduce((a, lp) => a - lp, 0);
}

/** Σ NLL and Σ scored tokens over the rows in row order, and perplexity = exp(Σ NLL / Σ tokens). */
export function perplexity(rows: readonly ScoredRow[]): { tokens: number; perplexity: number } {
  let nll = 0, tokens = 0;
  for (const r of rows) {
    nll += rowNll(r.logprobs);
    tokens += r.logprobs.length;
  }
  return { tokens, perplexity: Math.exp(nll / Math.max(1, tokens)) };
}

/** score's --json object (README "Other commands"). */
export function scoreReport(run: ScoreRun, rows: readonly ScoredRow[]): Record<string, unknown> {
  return { format: scoreFormat, ...run, samples: rows, perplexity: perplexity(rows).perplexity };
}

/** The text of score's --json file: one line, NaN as null. */
export function scoreJsonText(report: Record<string, unknown>): string {
  return JSON.stringify(report, (_k, v) => (Number.isNaN(v) ? null : v)) + "\n";
}

/** The closing line of score's stdout. */
export function scoreTotals(rows: readonly ScoredRow[]): string {
  const { tokens, perplexity: ppl } = perplexity(rows);
  return `rows ${rows.length}  scored tokens ${tokens}  perplexity ${ppl.toFixed(4)}`;
}
