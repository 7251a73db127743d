// Checkpoint.load moves a tensor from the file to the device in 256 KiB pieces: tensors of
// many pieces, odd row lengths and a partial last piece arrive intact on every backend.
import { Checkpoint } from "../../qwen/checkpoint.ts";
import { bf16BitsToF32 } from "../../tensor/dtype.ts";
import { Rng } from "../../tensor/random.ts";
import { writeSafetensors } from "../../tensor/safetensors.ts";
import { assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";

const dir = await Deno.makeTempDir();
const rng = new Rng(3);
const bits = Uint16Array.from({ length: 3001 * 333 }, () => rng.int(0x7f00));
const floats = Float32Array.from({ length: 1000 * 701 }, () => rng.normal());
const ints = Int32Array.from({ length: 70001 }, () => rng.int(1 << 30) - (1 << 29));
await writeSafetensors(`${dir}/model.safetensors`, {
  "a.bf16": { dtype: "BF16", shape: [3001, 333], data: bits },
  "b.f32": { dtype: "F32", shape: [1000, 701], data: floats },
  "c.i32": { dtype: "I32", shape: [70001], data: ints },
});

for (const device of backends) {
  Deno.test(`Checkpoint.load() uploads multi-piece tensors intact on ${device.name}`, async () => {
    using ckpt = await Checkpoint.open(dir);
    for (
      const [name, want] of [
        ["a.bf16", Float32Array.from(bits, bf16BitsToF32)],
        ["b.f32", floats],
        ["c.i32", ints],
      ] as const
    ) {
      const t = await ckpt.load(name, device);
      const got = await t.data();
      let differ = 0;
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) differ++;
      assertEquals(got.length, want.length, name);
      assertEquals(differ, 0, `${name}: ${differ} values differ`);
      t.dispose();
    }
  });
}

Deno.test("Checkpoint.load() test files are removed", async () => {
  await Deno.remove(dir, { recursive: true });
});
