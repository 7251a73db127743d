// Access to ../shared/golden: fixtures, expected tensors and tolerances. Says once, plainly,
// when ../shared is absent.
import type { Device } from "../tensor/device.ts";
import { referenceDevice } from "../tensor/reference.ts";
import { SafetensorsFile } from "../tensor/safetensors.ts";
import { createWebGpuDevice } from "../tensor/webgpu/device.ts";

/** The golden directory (…/shared/golden/). */
export const goldenDir = new URL("../../shared/golden/", import.meta.url).pathname;

/** True when ../shared/golden exists. */
export const haveGolden = await Deno.stat(goldenDir).then(() => true, () => false);
if (!haveGolden) console.warn("tests: ../shared/golden is absent; golden parity tests are skipped");

/** An expected tensor: shape and values (f32 as Float32Array, i32 as Int32Array). */
export interface Expected {
  shape: number[];
  values: Float32Array | Int32Array;
}

/** Every tensor of a fixture's expected.safetensors. */
export async function readExpected(fixture: string): Promise<Map<string, Expected>> {
  using f = await SafetensorsFile.open(`${goldenDir}${fixture}/expected.safetensors`);
  const out = new Map<string, Expected>();
  for (const name of f.tensors.keys()) {
    const { info, bytes } = await f.read(name);
    const values = info.dtype === "I32"
      ? new Int32Array(bytes.buffer)
      : new Float32Array(bytes.buffer);
    out.set(name, { shape: [...info.shape], values });
  }
  return out;
}

/** A fixture's expected.json. */
export async function readExpectedJson(fixture: string): Promise<Record<string, any>> {
  return JSON.parse(await Deno.readTextFile(`${goldenDir}${fixture}/expected.json`));
}

/** float32 tolerances by kind (tolerances.json). */
export async function readTolerances(): Promise<Record<string, number>> {
  const t = JSON.parse(await Deno.readTextFile(`${goldenDir}tolerances.json`));
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(t.tolerances_float32 as Record<string, { tol: number }>)) {
    out[k] = v.tol;
  }
  return out;
}

/**
 * The backends golden tests run on, each with the factor its tolerances are multiplied by:
 * the reference must meet the float32 tolerances, WebGPU 10× them (README §6).
 */
export const goldenBackends: readonly [Device, number][] = await (async () => {
  const gpu = haveGolden ? await createWebGpuDevice() : null;
  if (haveGolden && !gpu) {
    console.warn("tests: no WebGPU adapter; golden tests check the reference backend only");
  }
  return [[referenceDevice, 1], ...(gpu ? [[gpu, 10] as [Device, number]] : [])];
})();
