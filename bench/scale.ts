// `deno task bench --only scale` (opt-in: many minutes, and the checkpoints take 3–30 GB of
// disk): DP by the real `deno task dp` on random-weight Qwen2.5 checkpoints beyond 0.5B
// (bench/qwen_shapes.ts): 1.5B and 3B (7B with BENCH_7B=1) at 512 and 2048 tokens with the
// weights in memory, 14B (BENCH_14B=1) streamed under `--max-memory 4GB`. Every figure comes
// from its own `dp` process, so each peak RSS is that run's alone. BENCH_SCALE_SIZES=0.5b,…
// and BENCH_SCALE_LENGTHS=64,… replace the sizes and lengths (a quick end-to-end check).
import { neededBy } from "../qwen/checkpoint.ts";
import { expectedShapes, parseQwen2Config, type Qwen2Config } from "../qwen/config.ts";
import { Rng } from "../tensor/random.ts";
import { procStatus, timeMaxRssMb, vmHwmMb } from "./peak_rss.ts";
import { qwen25Configs, type QwenSize, qwenSizes, writeQwenShape } from "./qwen_shapes.ts";

/** One size's `dp` runs: the sample lengths, and the memory cap that makes dp stream it. */
export interface ScaleRun {
  size: QwenSize;
  lengths: number[];
  maxMemory?: string;
}

/** Sizes whose weights are not held: dp streams their layers under this cap. */
const streamedUnder: Partial<Record<QwenSize, string>> = { "14b": "4GB" };

/**
 * The runs the environment asks for: 1.5B and 3B, 7B with BENCH_7B=1, 14B with BENCH_14B=1,
 * at 512 and 2048 tokens; BENCH_SCALE_SIZES and BENCH_SCALE_LENGTHS (comma lists) replace them.
 * @example
 * scaleRuns((name) => ({ BENCH_SCALE_SIZES: "0.5b", BENCH_SCALE_LENGTHS: "64" })[name]);
 * // [{ size: "0.5b", lengths: [64] }]
 */
export function scaleRuns(env: (name: string) => string | undefined): ScaleRun[] {
  const list = (name: string) => env(name)?.split(",").map((s) => s.trim()).filter(Boolean);
  const sizes = list("BENCH_SCALE_SIZES") ?? [
    "1.5b",
    "3b",
    ...(env("BENCH_7B") === "1" ? ["7b"] : []),
    ...(env("BENCH_14B") === "1" ? ["14b"] : []),
  ];
  for (const s of sizes) {
    if (!qwenSizes.includes(s as QwenSize)) {
      throw new Error(
        `BENCH_SCALE_SIZES: unknown size '${s}', expected some of ${qwenSizes.join(", ")}`,
      );
    }
  }
  const lengths = (list("BENCH_SCALE_LENGTHS") ?? ["512", "2048"]).map((s) => {
    const l = Number(s);
    if (!Number.isInteger(l) || l < 1) {
      throw new Error(`BENCH_SCALE_LENGTHS: '${s}' is not a positive integer token count`);
    }
    return l;
  });
  return (sizes as QwenSize[]).map((size) => {
    const maxMemory = streamedUnder[size];
    return maxMemory ? { size, lengths, maxMemory } : { size, lengths };
  });
}

/** A size as figure keys spell it: "1.5b" → "15b". */
export const sizeKey = (size: QwenSize): string => size.replace(".", "");

/**
 * MiB of the bf16 weights DP reads: all of them but an untied LM head, the final norm and the
 * last layer's MLP and post-attention norm (`neededBy("dp")`, as `dp` loads them).
 */
export function dpWeightsMb(config: Qwen2Config): number {
  const needed = neededBy("dp", config);
  let bytes = 0;
  for (const [name, shape] of expectedShapes(config)) {
    if (needed(name)) bytes += 2 * shape.reduce((a, b) => a * b, 1);
  }
  return bytes / 2 ** 20;
}

/** One JSONL row `{"input_ids": […]}` of `length` random token ids below 151000 (`seed` fixed). */
export function tokenIdsRow(length: number, seed = 7): string {
  const rng = new Rng(seed);
  return JSON.stringify({ input_ids: Array.from({ length }, () => rng.int(151000)) }) + "\n";
}

/** The times dp states on stderr after its table. */
export interface DpTiming {
  forward_s: number;
  read_s: number;
  streamed: boolean;
}

/**
 * dp's timing line (`dp: forward F s for N tokens (R tokens/s), reading weights W s`, with
 * ` (streamed, …)` when the layers were streamed), or null when stderr has none.
 */
export function dpTiming(stderr: string): DpTiming | null {
  const m =
    /^dp: forward ([\d.]+) s for \d+ tokens \([\d.]+ tokens\/s\), reading weights ([\d.]+) s( \(streamed)?/m
      .exec(stderr);
  return m ? { forward_s: Number(m[1]), read_s: Number(m[2]), streamed: m[3] !== undefined } : null;
}

/**
 * Tokens per second of one `length`-token forward, from the best source there is: dp's
 * timing line (the sample loop: the forward with its DP statistics, streamed reads included,
 * no start-up or load); else its last progress line (`dp: 1/1 (100%)  R tokens/s`); else the
 * whole process's wall time (start-up and load included).
 */
export function forwardTokensPerS(
  length: number,
  stderr: string,
  timing: DpTiming | null,
  wallS: number,
): { value: number; source: "progress" | "timing" | "process" } {
  if (timing && timing.forward_s > 0) {
    return { value: length / timing.forward_s, source: "timing" };
  }
  const lines = [...stderr.matchAll(/^dp: (\d+)\/(\d+) \(100%\)\s+([\d.]+) tokens\/s/gm)];
  const last = lines.pop();
  if (last && last[1] === last[2]) return { value: Number(last[3]), source: "progress" };
  return { value: length / wallS, source: "process" };
}

/** A finished child: exit code, its stderr, wall seconds, peak RSS and where that came from. */
export interface MeasuredRun {
  code: number;
  stderr: string;
  wallS: number;
  peakRssMb: number;
  rssFrom: "time" | "VmHWM";
}

const gnuTime = "/usr/bin/time";

/** Whether /usr/bin/time is there to report a child's maximum RSS. */
export const haveTime = (): Promise<boolean> =>
  Deno.stat(gnuTime).then((s) => s.isFile, () => false);

/**
 * Run `[program, ...args]`, echoing its stderr, and measure its peak RSS: by `/usr/bin/time -f
 * %M` when `useTime`, else by polling its VmHWM every 100 ms while it runs (the high-water mark
 * only grows, so the last poll misses at most the final 100 ms).
 */
export async function runMeasured(
  [program, ...args]: string[],
  useTime: boolean,
): Promise<MeasuredRun> {
  const start = performance.now();
  const child = new Deno.Command(useTime ? gnuTime : program!, {
    args: useTime ? ["-f", "%M", program!, ...args] : args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let peak = NaN, running = true;
  const polling = (async () => {
    while (running && !useTime) {
      const hwm = vmHwmMb(procStatus(child.pid) ?? "");
      if (hwm > peak || Number.isNaN(peak)) peak = hwm; // a gone process (NaN) keeps the peak
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let stderr = "";
  const decoder = new TextDecoder();
  await child.stderr.pipeTo(
    new WritableStream({
      write(chunk) {
        Deno.stderr.writeSync(chunk);
        stderr += decoder.decode(chunk, { stream: true });
      },
    }),
  );
  const { code } = await child.status;
  running = false;
  await polling;
  const wallS = (performance.now() - start) / 1000;
  return useTime
    ? { code, stderr, wallS, peakRssMb: timeMaxRssMb(stderr), rssFrom: "time" }
    : { code, stderr, wallS, peakRssMb: peak, rssFrom: "VmHWM" };
}

const dpScript = new URL("../experiments/dp.ts", import.meta.url).pathname;

/** The figures of every run `scaleRuns` asks for, each `dp` in its own process. */
export async function benchScale(): Promise<Record<string, number>> {
  const runs = scaleRuns((name) => Deno.env.get(name));
  const useTime = await haveTime();
  if (!useTime) console.error(`bench scale: no ${gnuTime}; peak RSS from polling VmHWM`);
  const work = await Deno.makeTempDir({ prefix: "bench-scale-" });
  const figures: Record<string, number> = {};
  try {
    for (const { size, lengths, maxMemory } of runs) {
      const dir = await writeQwenShape(size);
      const key = sizeKey(size);
      figures[`dp_${key}_weights_mb`] = dpWeightsMb(parseQwen2Config(qwen25Configs[size]));
      for (const l of lengths) {
        const data = `${work}/ids_${l}.jsonl`;
        await Deno.writeTextFile(data, tokenIdsRow(l));
        const out = `${work}/dp_${key}_${l}.json`;
        console.error(
          `bench scale: dp on ${size} at ${l} tokens${maxMemory ? " (streamed)" : ""}…`,
        );
        const run = await runMeasured([
          Deno.execPath(),
          ...[
            "run",
            "--allow-read",
            "--allow-env",
            "--allow-write",
            "--allow-sys=systemMemoryInfo",
            dpScript,
          ],
          ...["--model", dir, "--data", data, "--json", out, "--max-tokens", String(l)],
          ...(maxMemory ? ["--max-memory", maxMemory] : []),
        ], useTime);
        if (run.code !== 0) {
          const tail = run.stderr.trimEnd().split("\n").slice(-5).join("\n");
          throw new Error(`bench scale: dp on ${size} at ${l} tokens exited ${run.code}:\n${tail}`);
        }
        const timing = dpTiming(run.stderr);
        const speed = forwardTokensPerS(l, run.stderr, timing, run.wallS);
        console.error(
          `bench scale: ${size} at ${l} tokens: ${
            speed.value.toFixed(1)
          } tokens/s (from ${speed.source}), peak RSS ${
            run.peakRssMb.toFixed(0)
          } MB (from ${run.rssFrom}), ${run.wallS.toFixed(1)} s in all`,
        );
        figures[`dp_${key}_${l}_tokens_per_s`] = speed.value;
        figures[`dp_${key}_${l}_peak_rss_mb`] = run.peakRssMb;
        if (maxMemory) {
          if (timing && !timing.streamed) console.error(`bench scale: ${size} was not streamed`);
          figures[`dp_${key}_${l}_read_s`] = timing?.read_s ?? NaN;
        }
      }
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  return figures;
}
