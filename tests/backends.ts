// The devices the suites run on: the reference, and WebGPU with both storage strategies when
// an adapter exists. Opened once per test module (pipelines compile on first use, so files
// reuse these rather than opening their own). Without an adapter it says so once.
import type { Device } from "../tensor/device.ts";
import { referenceDevice } from "../tensor/reference.ts";
import { createWebGpuDevice, type WebGpuDevice } from "../tensor/webgpu/device.ts";

const texture = await createWebGpuDevice("texture");
const buffer = texture ? await createWebGpuDevice("buffer") : null;

/** WebGPU devices, one per storage strategy (empty without an adapter). */
export const webgpuBackends: readonly WebGpuDevice[] = [texture, buffer].filter(
  (d): d is WebGpuDevice => d !== null,
);

/** Every backend to test: the reference first, then the WebGPU devices. */
export const backends: readonly Device[] = [referenceDevice, ...webgpuBackends];

const warnedKey = "TESTS_WEBGPU_MISSING_SAID";
if (webgpuBackends.length === 0) {
  let said = false;
  try {
    said = Deno.env.get(warnedKey) === "1";
    Deno.env.set(warnedKey, "1"); // env is per process: one notice for the whole run
  } catch {
    // no env permission: say it per module
  }
  if (!said) {
    console.warn(
      "tests: no WebGPU adapter found; WebGPU suites run on the reference backend only " +
        "(install mesa-vulkan-drivers for lavapipe)",
    );
  }
}
