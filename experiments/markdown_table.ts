// The result tables of the evaluation commands and the report, in the papers' layouts, as
// GitHub markdown.

/** A markdown table: a header row, the separator, the rows. */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  return [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** A data file's column name: its base name without `.jsonl` / `.json`. */
export function setLabel(path: string): string {
  return path.replace(/^.*\//, "").replace(/\.jsonl?$/, "");
}
