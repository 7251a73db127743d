// `deno task bench [--json] [--only rows,matmul,attention]`: kernel figures on the default
// backend. With --json, one JSON object is the last line of stdout.
import { parseArgs } from "node:util";
import { init } from "../tensor/backend.ts";
import type { Device } from "../tensor/device.ts";
import { WebGpuDevice } from "../tensor/webgpu/device.ts";
import { benchAttention } from "./attention.ts";
import { benchMatmul } from "./matmul.ts";
import { benchDp } from "./dp.ts";
import { benchQwen } from "./qwen.ts";
import { benchRows } from "./rows.ts";

const suites: Record<string, (device: Device) => Promise<Record<string, number>>> = {
  rows: benchRows,
  matmul: benchMatmul,
  attention: benchAttention,
  qwen: benchQwen,
  dp: benchDp,
};

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
--json   print one JSON object as the last line of stdout`);
  Deno.exit(0);
}

const device = await init();
const adapter = device instanceof WebGpuDevice
  ? `${device.adapterDescription} (${device.name})`
  : device.name;
const chosen = values.only ? values.only.split(",") : Object.keys(suites);
const figures: Record<string, number | string> = { adapter };
for (const name of chosen) {
  const suite = suites[name];
  if (!suite) {
    console.error(
      `bench: error: unknown suite '${name}', expected ${Object.keys(suites).join(", ")}`,
    );
    Deno.exit(2);
  }
  console.error(`bench: ${name}…`);
  Object.assign(figures, await suite(device));
}
if (values.json) console.log(JSON.stringify(figures));
else {
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [k, v] of Object.entries(figures)) {
    console.log(`${k.padEnd(width)}  ${typeof v === "number" ? v.toFixed(2) : v}`);
  }
}
