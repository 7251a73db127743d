import type { Device } from "../device.ts";
import type { DType } from "../dtype.ts";
import { apply1, floats, nonDifferentiable, type OpDef } from "../op.ts";
import { checkShape } from "../shape.ts";
import { sizeOf, type Tensor } from "../tensor.ts";

interface FillAttrs {
  shape: readonly number[];
  dtype: DType;
  value: number;
}

/** A tensor of one repeated value, made on the device (no upload). */
export const fillOp: OpDef<FillAttrs> = {
  name: "full",
  infer(_inputs, { shape, dtype }) {
    checkShape("full", shape);
    return [{ shape, dtype }];
  },
  reference(_inputs, { shape, dtype, value }) {
    const n = sizeOf(shape);
    return [dtype === "i32" ? new Int32Array(n).fill(value) : floats(n).fill(value)];
  },
  webgpu: (gpu, _inputs, { value }, [out]) => [gpu.fill(out!, value)],
  vjp: nonDifferentiable,
};

/** A tensor of `shape` filled with `value`. */
export function full(
  shape: readonly number[],
  value: number,
  dtype: DType,
  device: Device,
): Tensor {
  return apply1(fillOp, [], { shape, dtype, value }, device);
}
