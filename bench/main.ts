// `deno task bench [--json] [--only rows,matmul,attention]`: kernel figures on the default
// backend. With --json, one JSON object is the last line of stdout. Opt-in suites (scale)
// run only when --only names them.
import { parseArgs } from "node:util";
import { init } from "../tensor/backend.ts";
import type { Device } from "../tensor/device.ts";
import { WebGpuDevice } from "../tensor/webgpu/device.ts";
import { benchAttention } from "./attention.ts";
import { benchMatmul } from "./matmul.ts";
import { benchDp } from "./dp.ts";
import { benchQwen } from "./qwen.ts";
import { benchRows } from "./rows.ts";
import { benchScale } from "./scale.ts";
import { benchTrainEmbed } from "./train_embed.ts";
import { benchUbmoe } from "./ubmoe.ts";

const suites: Record<string, (device: Device) => Promise<Record<string, number>>> = {
  rows: benchRows,
  matmul: benchMatmul,
  attention: benchAttention,
  qwen: benchQwen,
  dp: benchDp,
  embed: benchTrainEmbed,
  ubmoe: benchUbmoe,
  scale: benchScale,
};
/** Suites too long for every run: only `--only` runs them. */
const optIn = ["scale"];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    only: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(`deno task bench [--json] [--only ${Object.keys(suites).join(",")}]

Kernel benchmarks on the default backend (TENSOR_BACKEND, TENSOR_STORAGE choose).
--json   print one JSON object as the last line of stdout

Without --only every suite runs except scale, which runs only as --only scale: DP by the
real \`deno task dp\` on random-weight Qwen2.5 1.5B and 3B (BENCH_7B=1: 7B too; BENCH_14B=1:
14B streamed under --max-memory 4GB) at 512 and 2048 tokens, each in its own process. It
takes many minutes and writes each checkpoint once (1.5B 3.1 GB, 3B 6.2 GB, 7B 15.2 GB, 14B
29.5 GB) under QWEN_SHAPES_DIR (default TMPDIR or /tmp). BENCH_SCALE_SIZES=0.5b,1.5b and
BENCH_SCALE_LENGTHS=64,512 replace its sizes and lengths.`);
  Deno.exit(0);
}

const chosen = values.only
  ? values.only.split(",")
  : Object.keys(suites).filter((name) => !optIn.includes(name));
for (const name of chosen) {
  if (!suites[name]) {
    console.error(
      `bench: error: unknown suite '${name}', expected ${Object.keys(suites).join(", ")}`,
    );
    Deno.exit(2);
  }
}
const figures: Record<string, number | string> = {};
if (chosen.length === 1) {
  const device = await init();
  figures.adapter = device instanceof WebGpuDevice
    ? `${device.adapterDescription} (${device.name})`
    : device.name;
  console.error(`bench: ${chosen[0]}…`);
  Object.assign(figures, await suites[chosen[0]!]!(device));
} else {
  // one process per suite, so each peak-memory figure is that suite's own
  for (const name of chosen) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--v8-flags=--expose-gc",
        "--allow-read",
        "--allow-env",
        "--allow-run",
        "--allow-write",
        import.meta.filename!,
        "--only",
        name,
        "--json",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    if (out.code !== 0) {
      console.error(`bench: error: suite ${name} failed (exit ${out.code})`);
      Deno.exit(1);
    }
    Object.assign(figures, JSON.parse(lines[lines.length - 1]!));
  }
}
if (values.json) console.log(JSON.stringify(figures));
else {
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [k, v] of Object.entries(figures)) {
    console.log(`${k.padEnd(width)}  ${typeof v === "number" ? v.toFixed(2) : v}`);
  }
}
