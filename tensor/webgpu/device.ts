// The WebGPU device: storage allocation and pooling, dispatch batching (many dispatches,
// one submit), pipeline cache, upload and async read-back (DESIGN 2.3, 5.1).
import type { Device, HostArray, MemoryStats, Storage, StorageWriter } from "../device.ts";
import {
  bf16BitsToF32,
  byteSize,
  type DType,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from "../dtype.ts";
import type { Meta, OpDef } from "../op.ts";
import type { Tensor } from "../tensor.ts";
import type { Gpu, GpuTensor } from "./gpu.ts";
import { createKernels } from "./kernels/mod.ts";
import { keepLinearWeightPacked } from "./kernels/matmul_texture.ts";
import {
  bindingCode,
  type BindingSpec,
  bufferBytes,
  commonWgsl,
  perTexel,
  type StorageStrategy,
  textureExtent,
  textureFormat,
} from "./layout.ts";

export type { StorageStrategy };

/** Device storage: one texture, or one or more buffers (chunks of at most a binding's size). */
export class GpuStorage implements Storage {
  refs = 0;
  /**
   * Set when the storage's own texture was dropped because a derived form (packed matmul
   * panels) replaces it; this rebuilds the plain layout if anything else reads it.
   */
  unpack: (() => GpuStorage) | null = null;
  constructor(
    readonly dtype: DType,
    /** Capacity in elements (≥ the tensor's size: pooled storage is size-classed). */
    readonly capacity: number,
    readonly bytes: number,
    readonly poolKey: string,
    readonly texture: GPUTexture | null,
    readonly buffers: readonly GPUBuffer[],
    readonly chunkElements: number,
  ) {}
}

/** One kernel launch. */
export interface DispatchSpec {
  /** WGSL after the generated prelude (bindings, accessors, uniforms `u(i)`, `uf(i)`, `ui(i)`). */
  code: string;
  inputs: readonly { name: string; tensor: GpuTensor }[];
  outputs: readonly { name: string; storage: Storage }[];
  /** 32-bit uniform words (see `f32Word`). */
  uniforms?: readonly number[];
  /** Workgroup counts. */
  workgroups: readonly [number, number?, number?];
}

/** The bits of an f32 as a uniform word. */
export function f32Word(x: number): number {
  f32s[0] = x;
  return u32s[0]!;
}
const f32s = new Float32Array(1);
const u32s = new Uint32Array(f32s.buffer);

const maxPendingDispatches = 256;

/** `derived` key of a storage's plain layout rebuilt after `dropPlainLayout`. */
const plainLayoutKey = "plain-layout";

/**
 * Round an element count up to a size class so pooled storage is reused: 8 classes per
 * power of two (at most 12.5 % slack), at least 64 elements.
 */
function sizeClass(n: number): number {
  if (n <= 64) return 64;
  const step = 2 ** Math.max(0, Math.floor(Math.log2(n)) - 3);
  return Math.ceil(n / step) * step;
}

function poolLimitBytes(): number {
  let mb = 1024;
  try {
    const v = Deno.env.get("TENSOR_POOL_MB");
    if (v !== undefined && Number.isFinite(Number(v)) && Number(v) >= 0) mb = Number(v);
  } catch {
    // no env permission: the default
  }
  return mb * 1024 * 1024;
}

export class WebGpuDevice implements Device {
  readonly kind = "webgpu" as const;
  readonly name: string;
  readonly gpu: Gpu;
  #pool = new Map<string, GpuStorage[]>();
  #pooledBytes = 0;
  #live = new Set<GpuStorage>();
  #derived = new Map<GpuStorage, Map<string, GpuStorage>>();
  /** Pooled storages in the order they were released (eviction takes the oldest). */
  #released: GpuStorage[] = [];
  /** Memory the pool may keep for reuse (TENSOR_POOL_MB, default 1024 MB). */
  readonly maxPooledBytes = poolLimitBytes();
  #pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  #transient: GPUBuffer[] = [];
  readonly maxBindingElements: number;

  constructor(
    readonly device: GPUDevice,
    readonly strategy: StorageStrategy,
    readonly adapterDescription: string,
  ) {
    this.name = `webgpu:${strategy}`;
    this.maxBindingElements = Math.floor(device.limits.maxStorageBufferBindingSize / 4 / 1024) *
      1024;
    this.gpu = createKernels(this);
  }

  // ------------------------------------------------------------ storage

  /**
   * A storage for `n` elements of `dtype`, from the pool when one fits. Transient storage is
   * rounded up to a size class so it is reused; `exact` storage (weights and what is derived
   * from them, which live long and come in a few recurring shapes) has no slack.
   */
  alloc(n: number, dtype: DType, exact = false): GpuStorage {
    const capacity = exact ? Math.max(1, n) : sizeClass(Math.max(1, n));
    const key = this.#poolKey(capacity, dtype);
    const pooled = this.#pool.get(key)?.pop();
    if (pooled) {
      this.#pooledBytes -= pooled.bytes;
      this.#live.add(pooled);
      return pooled;
    }
    const s = this.#create(capacity, dtype, key);
    this.#live.add(s);
    return s;
  }

  /** Storage for an op output. */
  allocFor(meta: Meta): GpuStorage {
    return this.alloc(meta.shape.reduce((a, b) => a * b, 1), meta.dtype);
  }

  #poolKey(capacity: number, dtype: DType): string {
    return `${this.strategy}:${dtype}:${capacity}`;
  }

  #create(capacity: number, dtype: DType, key: string): GpuStorage {
    if (this.strategy === "texture") {
      const { width, height } = textureExtent(capacity, dtype);
      const texture = this.device.createTexture({
        size: [width, height],
        format: textureFormat(dtype),
        usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_SRC |
          GPUTextureUsage.COPY_DST,
      });
      return new GpuStorage(dtype, capacity, width * height * 16, key, texture, [], 0);
    }
    const per = perTexel(dtype);
    const chunkElements = Math.floor(this.maxBindingElements * (per === 8 ? 2 : 1) / per) * per;
    const chunks: GPUBuffer[] = [];
    let bytes = 0;
    for (let start = 0; start < capacity; start += chunkElements) {
      const size = bufferBytes(Math.min(chunkElements, capacity - start), dtype);
      bytes += size;
      chunks.push(this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      }));
    }
    return new GpuStorage(dtype, capacity, bytes, key, null, chunks, chunkElements);
  }

  /**
   * Data derived from a storage's contents and kept while it lives (e.g. a weight packed into
   * matmul panels): `make` runs once per (storage, key); released with the storage.
   */
  derived(storage: Storage, key: string, make: () => GpuStorage): GpuStorage {
    const s = storage as GpuStorage;
    let entries = this.#derived.get(s);
    if (!entries) this.#derived.set(s, entries = new Map());
    let d = entries.get(key);
    if (!d) entries.set(key, d = make());
    return d;
  }

  /**
   * Keep only the derived form `key` of a storage (e.g. a weight's packed matmul panels):
   * its own texture is destroyed, and rebuilt by `unpack` only if another kernel reads it.
   */
  dropPlainLayout(storage: Storage, unpack: () => GpuStorage): void {
    const s = storage as GpuStorage;
    if (!s.texture || s.unpack) return;
    s.unpack = unpack;
    // The texture goes to the pool, not to destruction: the next weight of its size class is
    // uploaded into it (a loaded model is mostly layers of equal shapes). A destroyed texture's
    // memory stays with the driver's allocator on lavapipe, so a model loaded through fresh
    // plain textures peaked at ~1.45 × its weights (1.5B: 4.4 GB RSS for 2.9 GB).
    this.#pooled(new GpuStorage(s.dtype, s.capacity, s.bytes, s.poolKey, s.texture, [], 0));
  }

  /**
   * Destroy GPU resources once the queue has finished the work submitted so far: lavapipe
   * corrupts its heap (an abort at exit) when a texture still in flight is destroyed.
   */
  #destroyWhenIdle(s: { texture: GPUTexture | null; buffers: readonly GPUBuffer[] }): void {
    this.device.queue.onSubmittedWorkDone().then(() => {
      s.texture?.destroy();
      for (const b of s.buffers) b.destroy();
    });
  }

  /** The storage itself, or its rebuilt plain layout when that was dropped. */
  #plain(s: GpuStorage): GpuStorage {
    return s.unpack ? this.derived(s, plainLayoutKey, s.unpack) : s;
  }

  /**
   * Free the plain layout rebuilt for a storage that is kept in a derived form (e.g. after
   * packing a weight's panels the other way round from it): encoded work that reads it still
   * runs first, and a later reader rebuilds it.
   */
  dropRebuiltPlain(storage: Storage): void {
    const entries = this.#derived.get(storage as GpuStorage);
    const plain = entries?.get(plainLayoutKey);
    if (!plain) return;
    entries!.delete(plainLayoutKey);
    this.release(plain);
  }

  release(storage: Storage): void {
    const s = storage as GpuStorage;
    if (!this.#live.delete(s)) return;
    s.refs = 0;
    const derived = this.#derived.get(s);
    if (derived) {
      this.#derived.delete(s);
      for (const d of derived.values()) this.release(d);
    }
    if (s.unpack) return; // its texture went to the pool when it was dropped
    this.#pooled(s);
  }

  /** Keep a storage nobody uses for reuse by the next `alloc` of its size class. */
  #pooled(s: GpuStorage): void {
    const list = this.#pool.get(s.poolKey) ?? [];
    list.push(s);
    this.#pool.set(s.poolKey, list);
    this.#pooledBytes += s.bytes;
    this.#released.push(s);
    if (this.#pooledBytes > this.maxPooledBytes) this.#evict();
  }

  /**
   * Destroy the longest-pooled storages until the pool is within half its limit. Encoded
   * work may still use them, so it is submitted first.
   */
  #evict(): void {
    this.flush();
    const target = this.maxPooledBytes / 2;
    while (this.#pooledBytes > target && this.#released.length) {
      const s = this.#released.shift()!;
      const list = this.#pool.get(s.poolKey);
      const at = list?.indexOf(s) ?? -1;
      if (at < 0) continue; // taken out of the pool again since
      list!.splice(at, 1);
      this.#pooledBytes -= s.bytes;
      this.#destroyWhenIdle(s);
    }
    this.#released = this.#released.filter((s) => this.#pool.get(s.poolKey)?.includes(s));
  }

  /** Destroy every pooled allocation (memory the pool keeps for reuse). */
  trimPool(): void {
    this.flush();
    for (const list of this.#pool.values()) {
      for (const s of list) {
        this.#destroyWhenIdle(s);
      }
    }
    this.#pool.clear();
    this.#released = [];
    this.#pooledBytes = 0;
  }

  stats(): MemoryStats {
    let liveBytes = 0;
    for (const s of this.#live) if (!s.unpack) liveBytes += s.bytes;
    return { liveBytes, liveCount: this.#live.size, pooledBytes: this.#pooledBytes };
  }

  upload(values: HostArray, dtype: DType): Storage {
    const n = values.length;
    const s = this.alloc(n, dtype);
    let bytes: Uint8Array<ArrayBuffer>;
    if (dtype === "bf16" || dtype === "f16") {
      const bits = values instanceof Uint16Array
        ? values
        : Uint16Array.from(values, dtype === "bf16" ? f32ToBf16Bits : f32ToF16Bits);
      bytes = new Uint8Array(bits.buffer as ArrayBuffer, bits.byteOffset, bits.byteLength);
    } else if (dtype === "i32") {
      const v = values instanceof Int32Array ? values : Int32Array.from(values, Math.trunc);
      bytes = new Uint8Array(v.buffer as ArrayBuffer, v.byteOffset, v.byteLength);
    } else {
      const v = values instanceof Float32Array ? values : Float32Array.from(values);
      bytes = new Uint8Array(v.buffer as ArrayBuffer, v.byteOffset, v.byteLength);
    }
    // writes are queue operations: submit encoded work first so it runs before this write
    this.flush();
    this.#writeAt(s, 0, bytes);
    return s;
  }

  uploadPieces(n: number, dtype: DType): StorageWriter {
    const s = this.alloc(n, dtype, true);
    this.flush();
    const total = n * byteSize(dtype);
    let at = 0;
    return {
      pieceBytes: s.texture ? s.texture.width * 16 : 4,
      write: (bytes) => {
        if (at + bytes.length > total) throw new Error("uploadPieces: more bytes than the tensor");
        this.#writeAt(s, at, bytes);
        at += bytes.length;
        // hand the write to the queue now: its staging copy is freed once that submit is done
        this.device.queue.submit([]);
      },
      done: () => {
        if (at !== total) throw new Error(`uploadPieces: ${at} of ${total} bytes written`);
        return s;
      },
    };
  }

  /**
   * Write raw bytes into a storage at a byte offset: a whole number of texture rows (the
   * last may be partial) or a multiple of 4 bytes into buffer chunks.
   */
  #writeAt(s: GpuStorage, offset: number, bytes: Uint8Array<ArrayBuffer>): void {
    const queue = this.device.queue;
    if (s.texture) {
      // whole rows straight from `bytes`, then the last partial row padded (no full copy)
      const rowBytes = s.texture.width * 16;
      const row0 = offset / rowBytes;
      const fullRows = Math.floor(bytes.length / rowBytes);
      const { width } = s.texture;
      if (fullRows > 0) {
        queue.writeTexture(
          { texture: s.texture, origin: [0, row0] },
          bytes.subarray(0, fullRows * rowBytes),
          { bytesPerRow: rowBytes },
          [width, fullRows],
        );
      }
      const rest = bytes.length - fullRows * rowBytes;
      if (rest > 0) {
        const last = new Uint8Array(rowBytes);
        last.set(bytes.subarray(fullRows * rowBytes));
        queue.writeTexture({ texture: s.texture, origin: [0, row0 + fullRows] }, last, {
          bytesPerRow: rowBytes,
        }, [width, 1]);
      }
      return;
    }
    const chunkBytes = s.chunkElements * byteSize(s.dtype);
    const end = offset + bytes.length;
    s.buffers.forEach((b, c) => {
      const from = Math.max(offset, c * chunkBytes), to = Math.min(end, (c + 1) * chunkBytes);
      if (to <= from) return;
      const part = bytes.subarray(from - offset, to - offset);
      const padded = part.length % 4 === 0 ? part : (() => {
        const p = new Uint8Array(Math.ceil(part.length / 4) * 4);
        p.set(part);
        return p;
      })();
      queue.writeBuffer(b, from - c * chunkBytes, padded as Uint8Array<ArrayBuffer>);
    });
  }

  async read(storage: Storage, dtype: DType, size: number): Promise<Float32Array | Int32Array> {
    const s = this.#plain(storage as GpuStorage);
    const elementBytes = byteSize(dtype);
    const need = Math.ceil(size * elementBytes / 4) * 4;
    this.#endPass();
    const encoder = this.#encoder ?? this.device.createCommandEncoder();
    this.#encoder = null;
    let staging: GPUBuffer;
    if (s.texture) {
      const { width } = s.texture;
      const rows = Math.max(1, Math.ceil(need / (width * 16)));
      staging = this.device.createBuffer({
        size: rows * width * 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      encoder.copyTextureToBuffer({ texture: s.texture }, {
        buffer: staging,
        bytesPerRow: width * 16,
      }, [width, rows]);
    } else {
      staging = this.device.createBuffer({
        size: Math.max(4, need),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const chunkBytes = s.chunkElements * elementBytes;
      s.buffers.forEach((b, c) => {
        const len = Math.min(need - c * chunkBytes, b.size);
        if (len > 0) {
          encoder.copyBufferToBuffer(b, 0, staging, c * chunkBytes, Math.ceil(len / 4) * 4);
        }
      });
    }
    this.#submit(encoder);
    await staging.mapAsync(GPUMapMode.READ);
    const raw = staging.getMappedRange().slice(0, need);
    staging.unmap();
    staging.destroy();
    if (dtype === "f32") return new Float32Array(raw, 0, size);
    if (dtype === "i32") return new Int32Array(raw, 0, size);
    const bits = new Uint16Array(raw, 0, size);
    return Float32Array.from(bits, dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32);
  }

  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Texture strategy: pack a Linear weight into matmul panels once and keep only those. */
  prepareLinearWeight(t: Tensor): void {
    if (this.strategy === "texture" && t.dtype !== "i32") keepLinearWeightPacked(this, t);
  }

  run(def: OpDef, inputs: readonly Tensor[], attrs: unknown, outs: readonly Meta[]): Storage[] {
    return def.webgpu(this.gpu, inputs, attrs, outs);
  }

  // ------------------------------------------------------------ dispatch

  /** Encode one kernel launch into the current batch. */
  dispatch(spec: DispatchSpec): void {
    if (spec.inputs.some((i) => (i.tensor.storage as GpuStorage).unpack)) {
      spec = {
        ...spec,
        inputs: spec.inputs.map(({ name, tensor }) => ({
          name,
          tensor: { ...tensor, storage: this.#plain(tensor.storage as GpuStorage) },
        })),
      };
    }
    const specs: BindingSpec[] = [
      ...spec.inputs.map(({ name, tensor }) =>
        this.#bindingSpec(name, tensor.storage as GpuStorage, "read")
      ),
      ...spec.outputs.map(({ name, storage }) =>
        this.#bindingSpec(name, storage as GpuStorage, "write")
      ),
    ];
    const words = spec.uniforms ?? [];
    const uniformVecs = Math.max(1, Math.ceil(words.length / 4));
    const prelude = `@group(0) @binding(0) var<uniform> U: array<vec4<u32>, ${uniformVecs}>;
fn u(i: u32) -> u32 { return U[i >> 2u][i & 3u]; }
fn uf(i: u32) -> f32 { return bitcast<f32>(u(i)); }
fn ui(i: u32) -> i32 { return bitcast<i32>(u(i)); }
${commonWgsl}
${bindingCode(this.strategy, specs, 1)}
`;
    const code = prelude + spec.code;
    const { pipeline, layout } = this.#pipeline(code, specs);
    const uniform = this.device.createBuffer({
      size: uniformVecs * 16,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    new Uint32Array(uniform.getMappedRange()).set(words.map((w) => w >>> 0));
    uniform.unmap();
    this.#transient.push(uniform);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform } }];
    let binding = 1;
    for (
      const s of [
        ...spec.inputs.map((i) => i.tensor.storage),
        ...spec.outputs.map((o) => o.storage),
      ]
    ) {
      const g = s as GpuStorage;
      if (g.texture) entries.push({ binding: binding++, resource: g.texture.createView() });
      else for (const b of g.buffers) entries.push({ binding: binding++, resource: { buffer: b } });
    }
    const bindGroup = this.device.createBindGroup({ layout, entries });
    const pass = this.#currentPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = spec.workgroups;
    pass.dispatchWorkgroups(x, y, z);
    if (++this.#pending >= maxPendingDispatches) this.flush();
  }

  #bindingSpec(name: string, s: GpuStorage, access: "read" | "write"): BindingSpec {
    return {
      name,
      dtype: s.dtype,
      access,
      chunks: Math.max(1, s.buffers.length),
      chunkElements: s.chunkElements,
    };
  }

  #pipeline(code: string, specs: readonly BindingSpec[]) {
    const cached = this.#pipelines.get(code);
    if (cached) return cached;
    const entries: GPUBindGroupLayoutEntry[] = [{
      binding: 0,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform" },
    }];
    let binding = 1;
    for (const s of specs) {
      if (this.strategy === "texture") {
        entries.push({
          binding: binding++,
          visibility: GPUShaderStage.COMPUTE,
          storageTexture: {
            access: s.access === "read" ? "read-only" : "write-only",
            format: textureFormat(s.dtype),
            viewDimension: "2d",
          },
        });
      } else {
        for (let c = 0; c < s.chunks; c++) {
          entries.push({
            binding: binding++,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: s.access === "read" ? "read-only-storage" : "storage" },
          });
        }
      }
    }
    const layout = this.device.createBindGroupLayout({ entries });
    const module = this.device.createShaderModule({ code });
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    const entry = { pipeline, layout };
    this.#pipelines.set(code, entry);
    return entry;
  }

  #currentPass(): GPUComputePassEncoder {
    if (this.#pass) return this.#pass;
    this.#encoder ??= this.device.createCommandEncoder();
    this.#pass = this.#encoder.beginComputePass();
    return this.#pass;
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = null;
  }

  /** Submit everything encoded so far (does not wait). */
  flush(): void {
    this.#endPass();
    if (this.#encoder) {
      const encoder = this.#encoder;
      this.#encoder = null;
      this.#submit(encoder);
    }
  }

  #submit(encoder: GPUCommandEncoder): void {
    this.device.queue.submit([encoder.finish()]);
    this.#pending = 0;
    const uniforms = this.#transient;
    this.#transient = [];
    if (uniforms.length) this.#destroyWhenIdle({ texture: null, buffers: uniforms });
  }

  /** Temporary output storage for a multi-pass kernel; give it back with `release`. */
  temp(n: number, dtype: DType): GpuStorage {
    return this.alloc(n, dtype);
  }
}

/**
 * Choose the storage strategy by measuring (DESIGN 5.1): time a kernel that streams loads
 * from a storage buffer against the same kernel reading a read-only storage texture. On
 * lavapipe a buffer load costs ~40× a texture load; on real GPUs buffers win or tie.
 */
async function probeStrategy(
  device: GPUDevice,
): Promise<{ strategy: StorageStrategy; ratio: number }> {
  const texels = 4096;
  const loads = 2048;
  const buffer = device.createBuffer({ size: texels * 16, usage: GPUBufferUsage.STORAGE });
  const texture = device.createTexture({
    size: [texels / 16, 16],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING,
  });
  const out = device.createBuffer({ size: 64 * 64 * 4, usage: GPUBufferUsage.STORAGE });
  const body = (load: string, n = loads) => `
@group(0) @binding(1) var<storage, read_write> result: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var acc = vec4<f32>(0.0);
  var t = gid.x * 7u;
  for (var i = 0u; i < ${n}u; i++) { t = (t + 61u) & ${texels - 1}u; acc += ${load}; }
  result[gid.x] = acc.x + acc.y + acc.z + acc.w;
}`;
  const kernels = {
    empty: `@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;\n${body("src[t]", 1)}`,
    buffer: `@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;\n${body("src[t]")}`,
    texture: `@group(0) @binding(0) var src: texture_storage_2d<rgba32float, read>;\n${
      body("textureLoad(src, vec2<u32>(t % 256u, t / 256u))")
    }`,
  };
  const time = async (kind: "empty" | "buffer" | "texture") => {
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code: kernels[kind] }), entryPoint: "main" },
    });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: kind === "texture" ? texture.createView() : { buffer } },
        { binding: 1, resource: { buffer: out } },
      ],
    });
    let best = Infinity;
    for (let rep = 0; rep < 3; rep++) {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(64);
      pass.end();
      const start = performance.now();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      best = Math.min(best, performance.now() - start);
    }
    return best;
  };
  const tEmpty = await time("empty");
  const tBuffer = Math.max(0.01, (await time("buffer")) - tEmpty);
  const tTexture = Math.max(0.01, (await time("texture")) - tEmpty);
  buffer.destroy();
  texture.destroy();
  out.destroy();
  const ratio = tBuffer / tTexture;
  if (Deno.env.get("DEBUG_PROBE")) {
    console.error(`probe: buffer ${tBuffer.toFixed(2)} ms, texture ${tTexture.toFixed(2)} ms`);
  }
  return { strategy: ratio > 1.5 ? "texture" : "buffer", ratio };
}

/** Open the WebGPU device (null when there is no adapter). */
export async function createWebGpuDevice(
  storage: StorageStrategy | "auto" = "auto",
): Promise<WebGpuDevice | null> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return null;
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  if (storage !== "auto" && storage !== "texture" && storage !== "buffer") {
    throw new Error(`TENSOR_STORAGE: expected texture, buffer or auto, got '${storage}'`);
  }
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxTextureDimension2D: l.maxTextureDimension2D,
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxStorageTexturesPerShaderStage: l.maxStorageTexturesPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    },
  });
  device.addEventListener("uncapturederror", (e) => {
    console.error(`webgpu: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  const strategy = storage === "auto" ? (await probeStrategy(device)).strategy : storage;
  return new WebGpuDevice(device, strategy, adapter.info.description);
}
