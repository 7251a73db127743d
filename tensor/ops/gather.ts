// Row gather (embedding lookup) and its transpose, scatter-add.
import { computeType } from "../dtype.ts";
import { apply1, fail, floats, floatsFrom, type OpDef } from "../op.ts";
import { fmtShape, sizeOf, type Tensor } from "../tensor.ts";

/** gather(table [V, ...R], ids i32 [...I]) → [...I, ...R]; an id outside [0, V) gives zeros. */
export const gatherOp: OpDef<Record<never, never>> = {
  name: "gather",
  infer([table, ids]) {
    if (ids!.dtype !== "i32") {
      fail(
        "gather",
        `indices must be i32, got ${ids!.dtype} ${fmtShape(ids!.shape)} (table ${
          fmtShape(table!.shape)
        })`,
      );
    }
    if (table!.shape.length < 1) {
      fail("gather", `table must have rank ≥ 1, got ${fmtShape(table!.shape)}`);
    }
    return [{ shape: [...ids!.shape, ...table!.shape.slice(1)], dtype: computeType(table!.dtype) }];
  },
  reference([table, ids], _attrs, [out]) {
    const rows = table!.shape[0]!;
    const width = sizeOf(table!.shape.slice(1));
    const res = out!.dtype === "i32"
      ? new Int32Array(sizeOf(out!.shape))
      : floats(sizeOf(out!.shape));
    ids!.values.forEach((id, i) => {
      if (id >= 0 && id < rows) {
        res.set(table!.values.subarray(id * width, (id + 1) * width), i * width);
      }
    });
    return [res];
  },
  webgpu: (gpu, [table, ids], _attrs, [out]) => [gpu.gather(table!, ids!, out!)],
  vjp: ([g], { inputs: [table, ids], needsGrad: [needTable] }) => [
    g && needTable ? scatterAdd(g, ids!, table!.shape[0]!) : undefined,
    undefined,
  ],
};

/** scatterAdd(src [...I, ...R], ids [...I], rows V) → [V, ...R]: out[ids[i]] += src[i]. */
export const scatterAddOp: OpDef<{ rows: number }> = {
  name: "scatterAdd",
  infer([src, ids], { rows }) {
    if (ids!.dtype !== "i32") {
      fail(
        "scatterAdd",
        `indices must be i32, got ${ids!.dtype} ${fmtShape(ids!.shape)} (source ${
          fmtShape(src!.shape)
        })`,
      );
    }
    const lead = ids!.shape.length;
    if (!ids!.shape.every((n, d) => src!.shape[d] === n)) {
      fail(
        "scatterAdd",
        `indices ${fmtShape(ids!.shape)} do not prefix source ${fmtShape(src!.shape)}`,
      );
    }
    if (computeType(src!.dtype) !== "f32") {
      fail("scatterAdd", `source must be float, got ${src!.dtype}`);
    }
    return [{ shape: [rows, ...src!.shape.slice(lead)], dtype: "f32" }];
  },
  reference([src, ids], { rows }, [out]) {
    const width = sizeOf(out!.shape.slice(1));
    const acc = new Float64Array(rows * width);
    ids!.values.forEach((id, i) => {
      if (id < 0 || id >= rows) return;
      for (let j = 0; j < width; j++) acc[id * width + j]! += src!.values[i * width + j]!;
    });
    return [floatsFrom(acc)];
  },
  webgpu: (gpu, [src, ids], _attrs, [out]) => [gpu.scatterAdd(src!, ids!, out!)],
  vjp: ([g], { inputs: [, ids] }) => [g && gather(g, ids!), undefined],
};

/** Rows of `table` at `ids` (an embedding lookup). */
export function gather(table: Tensor, ids: Tensor): Tensor {
  return apply1(gatherOp, [table, ids], {});
}

/** Sum the rows of `src` into a `[rows, ...]` tensor at `ids` (gather's transpose). */
export function scatterAdd(src: Tensor, ids: Tensor, rows: number): Tensor {
  return apply1(scatterAddOp, [src, ids], { rows });
}
