// The largest tensors of a checkpoint (default: the 14B-shaped one of bench/qwen_shapes.ts)
// on both WebGPU storage strategies: the whole embedding table loaded and gathered from, the
// LM head multiplied (the largest matmul B operand), and layer 0 run on a short sample, each
// checked against values computed on the host from the file's bytes.
//
//   deno run -A bench/limits.ts [DIR]
import { embedding, linear } from "../nn/linear.ts";
import { causal } from "../nn/masks.ts";
import { openQwenCheckpoint } from "../qwen/checkpoint.ts";
import { decoderLayer, layerContext } from "../qwen/decoder.ts";
import { LayerStream } from "../qwen/stream.ts";
import { ropeTables } from "../nn/rope.ts";
import { tensor } from "../tensor/create.ts";
import { bf16BitsToF32 } from "../tensor/dtype.ts";
import { createWebGpuDevice } from "../tensor/webgpu/device.ts";
import { qwenShapeDir } from "./qwen_shapes.ts";

const dir = Deno.args[0] ?? qwenShapeDir("14b");
const { config, checkpoint } = await openQwenCheckpoint(dir);
const h = config.hiddenSize;
const ids = [0, 1, 4097, 65536, 151000, config.vocabSize - 1];
const headName = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";

/** Host f32 values of rows `rows` of a bf16 [V, H] tensor, read from the file. */
async function hostRows(name: string, rows: number[]): Promise<Float32Array[]> {
  const out = [];
  for (const r of rows) {
    const bytes = new Uint8Array(h * 2);
    await checkpoint.readInto(name, r * h * 2, bytes);
    out.push(Float32Array.from(new Uint16Array(bytes.buffer), bf16BitsToF32));
  }
  return out;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

const x = Float32Array.from({ length: h }, (_, i) => Math.sin(i) * 0.1);
const wantEmb = await hostRows("model.embed_tokens.weight", ids);
const wantHead = (await hostRows(headName, ids)).map((row) =>
  row.reduce((acc, w, i) => acc + w * x[i]!, 0)
);
const layerOut: ArrayLike<number>[] = [];
let failed = false;
for (const strategy of ["texture", "buffer"] as const) {
  const device = (await createWebGpuDevice(strategy))!;
  const report = (what: string, err: number, tol: number) => {
    const ok = err <= tol;
    failed ||= !ok;
    console.log(`${device.name}: ${what}: max |Δ| ${err.toExponential(2)} ${ok ? "ok" : "FAILED"}`);
  };
  const emb = await checkpoint.load("model.embed_tokens.weight", device);
  const got = await embedding(tensor(Int32Array.from(ids), [1, ids.length], { device }), {
    weight: emb,
  }).data();
  report(
    `embedding ${emb.shape.join("×")} gathered`,
    Math.max(...wantEmb.map((row, k) => maxAbs(got.subarray(k * h, (k + 1) * h), row))),
    0,
  );
  const head = config.tieWordEmbeddings ? emb : await checkpoint.load(headName, device);
  device.prepareLinearWeight(head);
  const logits = await linear(tensor(x, [1, h], { device }), { weight: head }).data();
  report(
    `${headName} ${head.shape.join("×")} · x`,
    maxAbs(ids.map((id) => logits[id]!), wantHead),
    1e-4,
  );
  emb.dispose();
  head.dispose();
  const stream = await LayerStream.open(dir, device);
  const sample = [11, 300, 4097, 151000, 77, 9, 1000, 42];
  const hs = await stream.embed(sample);
  const layer = await stream.loadLayer(0);
  const rope = ropeTables(sample.length, config.headDim, config.ropeTheta, device, 0);
  const ctx = layerContext(0, causal, rope, { dp: "only" }, config);
  const r = decoderLayer(layer, hs, config, ctx).next();
  if (!r.done) throw new Error("limits: layer 0 is a mixture of experts");
  layerOut.push(await r.value.h.data());
  stream.close();
}
const [tex, buf] = layerOut as [ArrayLike<number>, ArrayLike<number>];
const scale = Math.max(...Array.from(tex, Math.abs));
const err = maxAbs(tex, buf) / scale;
failed ||= err > 1e-4;
console.log(`layer 0 on 8 tokens: texture vs buffer, max |Δ| / max |h| ${err.toExponential(2)}`);
checkpoint.close();
if (failed) Deno.exit(1);
