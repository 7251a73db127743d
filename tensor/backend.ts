import type { Device } from "./device.ts";
import { referenceDevice } from "./reference.ts";
import { createWebGpuDevice, type StorageStrategy } from "./webgpu/device.ts";

let current: Device = referenceDevice;

/** The device new tensors go to when none is given (reference until `init` picks another). */
export function defaultDevice(): Device {
  return current;
}

/** Make `device` the default. */
export function setDefaultDevice(device: Device): void {
  current = device;
}

/** Options of `init`. */
export interface InitOptions {
  /** `webgpu`, `reference`, or `auto` (default: `TENSOR_BACKEND`, else webgpu when an adapter exists). */
  backend?: "webgpu" | "reference" | "auto";
  /** WebGPU storage strategy; default `TENSOR_STORAGE`, else chosen from the adapter. */
  storage?: StorageStrategy | "auto";
  /** Called with the one-line warning when WebGPU is unavailable (default: console.warn). */
  warn?: (message: string) => void;
}

/**
 * Pick and set the default device. With no WebGPU adapter, falls back to the reference
 * backend with a one-line warning.
 * @example
 * const device = await init(); // webgpu on a GPU or lavapipe, else reference
 */
export async function init(options: InitOptions = {}): Promise<Device> {
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  const backend = options.backend ?? (env("TENSOR_BACKEND") as InitOptions["backend"]) ?? "auto";
  if (backend !== "webgpu" && backend !== "reference" && backend !== "auto") {
    throw new Error(`TENSOR_BACKEND: expected webgpu, reference or auto, got '${backend}'`);
  }
  if (backend === "reference") {
    current = referenceDevice;
    return current;
  }
  const storage = options.storage ?? (env("TENSOR_STORAGE") as StorageStrategy | undefined) ??
    "auto";
  const gpu = await createWebGpuDevice(storage);
  if (gpu === null) {
    (options.warn ?? console.warn)("tensor: no WebGPU adapter found; using the reference backend");
    current = referenceDevice;
  } else current = gpu;
  return current;
}
