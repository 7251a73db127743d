// DP's per-sample results summarised into the paper's Table 3 (overall, per token-length
// bucket, per layer and head) and dp's --json object: one definition that `deno task dp` and
// `deno task merge` share, so a merged sharded run gives the single run's numbers exactly.

/** The `format` of dp's --json output. */
export const dpFormat = "ubmoe-deno dp/1";

/** One finished sample, as cached (and listed in a shard's `per_sample`). */
export interface SampleResult {
  index: number;
  line: number;
  length: number;
  dp_m: number;
  dp_b: number;
  dp_a: number;
  /** [layer][head] → [dp_m, dp_b, dp_a] fractions (with --per-layer). */
  heads?: number[][][];
}

/** DP-M, DP-B and DP-A in percent. */
export type Triple = { dp_main: number; dp_before: number; dp_after: number };

/** Means over samples, each summed in the list's order (NaN for an empty list). */
function meanTriple(list: readonly { dp_m: number; dp_b: number; dp_a: number }[]): Triple {
  const n = Math.max(1, list.length);
  const s = (k: "dp_m" | "dp_b" | "dp_a") => (list.reduce((a, r) => a + r[k], 0) / n) * 100;
  return list.length
    ? { dp_main: s("dp_m"), dp_before: s("dp_b"), dp_after: s("dp_a") }
    : { dp_main: NaN, dp_before: NaN, dp_after: NaN };
}

/** The results (samples in index order): overall, per bucket, and per layer/head. */
export function summarise(
  results: readonly SampleResult[],
  edges: readonly number[],
  perLayer: boolean,
) {
  const buckets = edges.slice(0, -1).map((lo, i) => {
    const hi = edges[i + 1]!;
    const inside = results.filter((r) =>
      r.length > lo && r.length <= hi || (lo === 0 && r.length === 0)
    );
    return { range: [lo, hi] as [number, number], count: inside.length, ...meanTriple(inside) };
  });
  const last = edges[edges.length - 1]!;
  const beyond = results.filter((r) => r.length > last);
  if (beyond.length) {
    buckets.push({
      range: [last, Infinity] as [number, number],
      count: beyond.length,
      ...meanTriple(beyond),
    });
  }
  const out: Record<string, unknown> = { ...meanTriple(results), samples: results.length, buckets };
  if (perLayer && results[0]?.heads) {
    const layers = results[0].heads.length, heads = results[0].heads[0]!.length;
    out.per_layer = Array.from({ length: layers }, (_, l) => {
      const perHead = Array.from({ length: heads }, (_, h) => {
        const cells = results.map((r) => ({
          dp_m: r.heads![l]![h]![0]!,
          dp_b: r.heads![l]![h]![1]!,
          dp_a: r.heads![l]![h]![2]!,
        }));
        return { head: h, ...meanTriple(cells) };
      });
      const avg = (k: keyof Triple) => perHead.reduce((a, x) => a + x[k], 0) / heads;
      return {
        layer: l,
        dp_main: avg("dp_main"),
        dp_before: avg("dp_before"),
        dp_after: avg("dp_after"),
        heads: perHead,
      };
    });
  }
  return out as Triple & {
    samples: number;
    buckets: ({ range: [number, number]; count: number } & Triple)[];
    per_layer?: unknown;
  };
}

/** The summary of a run. */
export type DpSummary = ReturnType<typeof summarise>;

/** The paper's Table 3 layout: DP-M / DP-B / DP-A rows, token-length columns. */
export function dpTable(summary: DpSummary): string {
  const cols = [
    { head: "all", count: summary.samples, t: summary as Triple },
    ...summary.buckets.map((b) => ({
      head: Number.isFinite(b.range[1]) ? `${b.range[0]}–${b.range[1]}` : `>${b.range[0]}`,
      count: b.count,
      t: b as Triple,
    })),
  ];
  const w = Math.max(9, ...cols.map((c) => c.head.length + 1));
  const cell = (v: number) => (Number.isNaN(v) ? "–" : v.toFixed(2)).padStart(w);
  const lines = [
    `${"tokens".padEnd(8)}${cols.map((c) => c.head.padStart(w)).join("")}`,
    `${"samples".padEnd(8)}${cols.map((c) => String(c.count).padStart(w)).join("")}`,
    `${"DP-M".padEnd(8)}${cols.map((c) => cell(c.t.dp_main)).join("")}`,
    `${"DP-B".padEnd(8)}${cols.map((c) => cell(c.t.dp_before)).join("")}`,
    `${"DP-A".padEnd(8)}${cols.map((c) => cell(c.t.dp_after)).join("")}`,
  ];
  return lines.join("\n");
}

/** What a dp run measured and how (the head of its JSON). */
export interface DpRun {
  /** --model as given: a directory or a Hugging Face repo id. */
  model: string;
  /** The snapshot directory a repo id resolved to. */
  model_dir?: string;
  adapter: string | null;
  data: string;
  mask: string;
  max_tokens: number;
  truncated: number;
  skipped_rows: number;
}

/** dp's --json object (README "DP"): the run, then the summary; an open bucket's hi is null. */
export function dpReport(run: DpRun, summary: DpSummary): Record<string, unknown> {
  return {
    format: dpFormat,
    ...run,
    ...summary,
    buckets: summary.buckets.map((b) => ({
      ...b,
      range: [b.range[0], Number.isFinite(b.range[1]) ? b.range[1] : null],
    })),
  };
}

/** The text of dp's --json file (NaN, an empty bucket's mean, as null). */
export function dpJsonText(report: Record<string, unknown>): string {
  return JSON.stringify(
    report,
    (_k, v) => (typeof v === "number" && Number.isNaN(v) ? null : v),
    2,
  ) +
    "\n";
}

/** The bucket edges a report's buckets were made from (the open last bucket adds none). */
export function bucketEdges(buckets: readonly { range: readonly (number | null)[] }[]): number[] {
  const closed = buckets.filter((b) => b.range[1] !== null);
  return [closed[0]!.range[0]!, ...closed.map((b) => b.range[1]!)];
}
