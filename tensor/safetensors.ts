// Our own safetensors reader and writer (the format: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}}, then the tensor bytes). The header is
// read and validated first; tensor bytes are read on demand at their offsets, so a large
// checkpoint is never copied into memory whole.

/** Element types of the format that this project reads and writes. */
export type SafetensorsDType =
  | "F64"
  | "F32"
  | "BF16"
  | "F16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

const dtypeBytes: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  BF16: 2,
  F16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Bytes per element of a safetensors dtype. */
export function safetensorsElementBytes(dtype: SafetensorsDType): number {
  return dtypeBytes[dtype];
}

/** One tensor's header entry, validated. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Byte range within the data section. */
  readonly begin: number;
  readonly end: number;
}

/** The one error the reader throws: names the file and what is wrong. */
export class SafetensorsError extends Error {
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = "SafetensorsError";
  }
}

/** Headers larger than this are rejected as corrupt (real ones are a few MB at most). */
const maxHeaderBytes = 100 * 1024 * 1024;

/** Parse and validate a header against the file size; `path` names the file in errors. */
export function parseHeader(
  path: string,
  headerBytes: Uint8Array,
  dataBytes: number,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const bad = (detail: string): never => {
    throw new SafetensorsError(path, detail);
  };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch {
    bad("header is not valid UTF-8 JSON");
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    bad("header is not a JSON object");
  }
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        bad("__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") bad(`__metadata__.${k} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const where = `tensor '${name}'`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      bad(`${where} is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in dtypeBytes)) {
      bad(`${where} has unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad(`${where} has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      bad(`${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataBytes) {
      bad(`${where} data_offsets [${begin}, ${end}] fall outside the ${dataBytes} data bytes`);
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = numel * dtypeBytes[dtype as SafetensorsDType];
    if (end - begin !== expected) {
      bad(
        `${where} spans ${end - begin} bytes, but ${dtype} ${
          JSON.stringify(shape)
        } needs ${expected}`,
      );
    }
    tensors.set(name, {
      name,
      dtype: dtype as SafetensorsDType,
      shape: shape as number[],
      begin,
      end,
    });
  }
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) =>
    a.begin - b.begin
  );
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) {
      bad(`tensors '${sorted[i - 1]!.name}' and '${sorted[i]!.name}' overlap`);
    }
  }
  return { tensors, metadata };
}

/** An open safetensors file: header parsed and validated, tensors read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly dataStart: number,
    private file: Deno.FsFile | null,
  ) {}

  /** Open and validate `path`. Throws SafetensorsError for a missing, truncated or corrupt file. */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      throw new SafetensorsError(
        path,
        e instanceof Deno.errors.NotFound ? "file not found" : `cannot open (${e})`,
      );
    }
    try {
      const size = (await file.stat()).size;
      if (size < 8) {
        throw new SafetensorsError(path, `file is ${size} bytes, too short for a header`);
      }
      const lenBytes = await readAt(file, 0, 8, path);
      const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
      if (headerLen > maxHeaderBytes || headerLen > size - 8) {
        throw new SafetensorsError(
          path,
          `header length ${headerLen} is impossible for a ${size}-byte file`,
        );
      }
      const header = await readAt(file, 8, headerLen, path);
      const { tensors, metadata } = parseHeader(path, header, size - 8 - headerLen);
      return new SafetensorsFile(path, tensors, metadata, 8 + headerLen, file);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** The header entry of `name`, or undefined. */
  info(name: string): TensorInfo | undefined {
    return this.tensors.get(name);
  }

  /** Read one tensor's raw bytes (little-endian, as stored). */
  async read(name: string): Promise<{ info: TensorInfo; bytes: Uint8Array<ArrayBuffer> }> {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    if (!this.file) throw new SafetensorsError(this.path, "file is closed");
    const bytes = await readAt(
      this.file,
      this.dataStart + info.begin,
      info.end - info.begin,
      this.path,
    );
    return { info, bytes };
  }

  /** Read `out.length` bytes of tensor `name`, starting `offset` bytes into it, into `out`. */
  async readInto(name: string, offset: number, out: Uint8Array<ArrayBuffer>): Promise<void> {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    if (!this.file) throw new SafetensorsError(this.path, "file is closed");
    if (offset < 0 || offset + out.length > info.end - info.begin) {
      throw new Error(`readInto: bytes ${offset}..${offset + out.length} outside tensor '${name}'`);
    }
    await fillAt(this.file, this.dataStart + info.begin + offset, out, this.path);
  }

  /** Close the file. */
  close(): void {
    this.file?.close();
    this.file = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  path: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const out = new Uint8Array(length);
  await fillAt(file, offset, out, path);
  return out;
}

async function fillAt(
  file: Deno.FsFile,
  offset: number,
  out: Uint8Array<ArrayBuffer>,
  path: string,
): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < out.length) {
    const n = await file.read(out.subarray(done));
    if (n === null) {
      throw new SafetensorsError(
        path,
        `file is truncated (wanted ${out.length} bytes at offset ${offset})`,
      );
    }
    done += n;
  }
}

/**
 * A tensor to write: raw little-endian bytes, a function producing them when written, or a
 * function producing them in consecutive pieces (so a tensor larger than memory streams).
 */
export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView | (() => ArrayBufferView | Iterable<ArrayBufferView>);
}

/** The header bytes and the tensors in file order (decreasing element size, then name). */
function layout(tensors: Record<string, TensorToWrite>, metadata: Record<string, string>) {
  const names = Object.keys(tensors).sort((a, b) => {
    const d = dtypeBytes[tensors[b]!.dtype] - dtypeBytes[tensors[a]!.dtype];
    return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const bytes = t.shape.reduce((a, b) => a * b, 1) * dtypeBytes[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8 + headerBytes.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  prefix.set(headerBytes, 8);
  /** A tensor's bytes, piece by piece, checked to add up to its size. */
  function* bytesOf(name: string): Generator<Uint8Array> {
    const t = tensors[name]!;
    const d = typeof t.data === "function" ? t.data() : t.data;
    const pieces = ArrayBuffer.isView(d) ? [d] : d;
    const want = (header[name] as { data_offsets: number[] }).data_offsets;
    const need = want[1]! - want[0]!;
    let got = 0;
    for (const p of pieces) {
      got += p.byteLength;
      if (got > need) break;
      yield new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
    }
    if (got !== need) {
      throw new Error(
        `safetensors: tensor '${name}' has ${
          got > need ? "more than " : ""
        }${got} bytes, ${t.dtype} ${JSON.stringify(t.shape)} needs ${need}`,
      );
    }
  }
  return { names, prefix, dataBytes: offset, bytesOf };
}

/**
 * The bytes a safetensors file starts with (length + header) and the size of its data
 * section, for tensors laid out as `encodeSafetensors` and `writeSafetensors` lay them out.
 */
export function safetensorsPrefix(
  tensors: Record<string, Omit<TensorToWrite, "data">>,
  metadata: Record<string, string> = { format: "pt" },
): { prefix: Uint8Array; dataBytes: number } {
  const noData = Object.fromEntries(
    Object.entries(tensors).map(([k, t]) => [k, { ...t, data: new Uint8Array(0) }]),
  );
  const { prefix, dataBytes } = layout(noData, metadata);
  return { prefix, dataBytes };
}

/**
 * Encode tensors as a safetensors file in memory: tensors ordered by decreasing element size,
 * then name (every tensor aligned to its element size), header padded with spaces to 8 bytes.
 */
export function encodeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> = { format: "pt" },
): Uint8Array {
  const { names, prefix, dataBytes, bytesOf } = layout(tensors, metadata);
  const out = new Uint8Array(prefix.length + dataBytes);
  out.set(prefix);
  let at = prefix.length;
  for (const name of names) {
    for (const b of bytesOf(name)) {
      out.set(b, at);
      at += b.length;
    }
  }
  return out;
}

/**
 * Write a safetensors file atomically (temporary file, then rename), streaming one tensor at
 * a time so a large checkpoint is never held in memory whole.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> = { format: "pt" },
): Promise<void> {
  const { names, prefix, bytesOf } = layout(tensors, metadata);
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, prefix);
    for (const name of names) for (const b of bytesOf(name)) await writeAll(file, b);
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(tmp, path);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}
