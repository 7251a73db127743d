// RoPE tables (Hugging Face Qwen2RotaryEmbedding, rope_type "default"; DESIGN 3.1).
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * cos/sin [L, D] for positions offset … offset+L−1: inv_freq[j] = θ^(−2j/D),
 * angle = p·inv_freq, each table is [cos(angle), cos(angle)] (halves repeated), computed in
 * f64 and rounded once to f32.
 */
export function ropeTables(
  length: number,
  headDim: number,
  theta: number,
  device: Device,
  offset = 0,
): { cos: Tensor; sin: Tensor } {
  const half = headDim / 2;
  const cos = new Float32Array(length * headDim), sin = new Float32Array(length * headDim);
  for (let p = 0; p < length; p++) {
    for (let j = 0; j < half; j++) {
      const angle = (offset + p) * (1 / theta ** ((2 * j) / headDim));
      const c = Math.cos(angle), s = Math.sin(angle);
      cos[p * headDim + j] = cos[p * headDim + j + half] = c;
      sin[p * headDim + j] = sin[p * headDim + j + half] = s;
    }
  }
  return {
    cos: tensor(cos, [length, headDim], { device }),
    sin: tensor(sin, [length, headDim], { device }),
  };
}
