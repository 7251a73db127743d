// `--max-memory SIZE`: the memory a forward-only command may use for weights and activations
// (DESIGN 5.2), and the choice it implies: the whole model in memory, or its layers streamed
// over chunks of samples sized to the budget.
import type { MemoryNeeds } from "../qwen/stream.ts";
import { UserError } from "./cli.ts";

/** The `--max-memory` flag of the forward-only commands. */
export const maxMemoryFlag = {
  type: "string",
  metavar: "SIZE",
  help:
    "memory for weights and activations, e.g. 4GB, 512MiB (default: the machine's available memory less 0.5 GB); above it, layers are streamed",
} as const;

const units: Record<string, number> = {
  "": 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Bytes of a size like `4GB`, `1.5GiB`, `512MB` or `1000000` (a usage error otherwise). */
export function parseSize(flag: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? units[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined || !(Number(m[1]) > 0)) {
    throw new UserError(
      `--${flag} must be a size like 4GB, 512MiB or a number of bytes, got '${text}'`,
      2,
    );
  }
  return Math.floor(Number(m[1]) * unit);
}

/** `3.2 GB` */
export function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`;
}

/** The `--stream` flag of the forward-only commands. */
export const streamFlag = {
  type: "boolean",
  help: "stream the layers even when the model fits the memory budget (same numbers)",
} as const;

/** What the process keeps for itself outside the budget (the runtime, the tokenizer). */
const reserveBytes = 0.5e9;

/** The budget: `--max-memory`, else the machine's available memory less a reserve. */
export function memoryBudget(flag: string | undefined): { bytes: number; source: string } {
  if (flag !== undefined) return { bytes: parseSize("max-memory", flag), source: "--max-memory" };
  try {
    const available = Deno.systemMemoryInfo().available;
    return { bytes: Math.max(0, available - reserveBytes), source: "available memory" };
  } catch {
    return { bytes: Infinity, source: "unknown (no --allow-sys)" };
  }
}

/** How a forward-only run uses its budget. */
export type MemoryPlan =
  | { stream: false }
  | { stream: true; chunks: number[][] };

/**
 * In memory when the weights and one sample's activations fit the budget (and streaming is
 * not asked for with `alwaysStream`); otherwise
 * consecutive samples grouped into chunks that fit beside two layers' weights (the one
 * running and the next being read). Sample `i` has `lengths[i]` tokens.
 */
export function planMemory(
  needs: MemoryNeeds,
  lengths: readonly number[],
  budget: number,
  alwaysStream = false,
): MemoryPlan {
  const longest = Math.max(1, ...lengths);
  const head = needs.headWorkingSet(longest);
  if (!alwaysStream && needs.weightBytes + Math.max(needs.workingSet(longest), head) <= budget) {
    return { stream: false };
  }
  // two layers while they run (the one running, the next being read), or the LM head at the end
  const fixed = Math.max(2 * needs.layerBytes, needs.headBytes + head);
  const smallest = fixed + needs.workingSet(longest) + needs.kept(longest) +
    longest * needs.embeddingRowBytes;
  if (smallest > budget) {
    throw new UserError(
      `--max-memory ${
        fmtBytes(budget)
      } is below the smallest budget that works for this model and data: ${fmtBytes(smallest)} (${
        needs.headBytes + head > 2 * needs.layerBytes
          ? `the LM head of ${fmtBytes(needs.headBytes)} and its logits`
          : `two layers of ${fmtBytes(needs.layerBytes)}`
      } and one ${longest}-token sample)`,
    );
  }
  const chunks: number[][] = [];
  let chunk: number[] = [], kept = 0, ws = 0;
  for (const [i, l] of lengths.entries()) {
    const w = Math.max(ws, needs.workingSet(l));
    const fits = fixed + w + kept + needs.kept(l) + l * needs.embeddingRowBytes <= budget;
    if (chunk.length > 0 && !fits) {
      chunks.push(chunk);
      chunk = [];
      kept = 0;
      ws = 0;
    }
    chunk.push(i);
    kept += needs.kept(l);
    ws = Math.max(ws, needs.workingSet(l));
  }
  if (chunk.length) chunks.push(chunk);
  return { stream: true, chunks };
}

/** The line a command prints when it streams: why, and over how many chunks. */
export function streamingNotice(
  command: string,
  asked: boolean | undefined,
  needs: MemoryNeeds,
  budget: { bytes: number; source: string },
  chunks: number,
  unit: string,
): string {
  const why = asked
    ? "--stream"
    : `weights ${fmtBytes(needs.weightBytes)} exceed the memory budget ${
      fmtBytes(budget.bytes)
    } (${budget.source})`;
  return `${command}: ${why}: streaming layers over ${chunks} chunk(s) of ${unit}`;
}
