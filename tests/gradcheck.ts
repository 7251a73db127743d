// JAX's check_vjp: for a random direction v and a random output cotangent ḡ,
// ⟨vjp(ḡ), v⟩ must equal ⟨ḡ, (f(x+εv) − f(x−εv)) / 2ε⟩. Everything runs on the f64
// reference device, so the central difference is accurate to ~ε² and rounding stays ~1e-16/ε.
import { vjp } from "../autograd/grad.ts";
import { isFloat } from "../tensor/dtype.ts";
import { leaves, type PyTree, unflatten } from "../tensor/pytree.ts";
import { Rng } from "../tensor/random.ts";
import { reference64Device } from "../tensor/reference.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";

/** Options of `checkVjp`. */
export interface VjpCheckOptions {
  /** Seed of the direction and the cotangent. */
  seed?: number;
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Relative tolerance on the two inner products (default 1e-6). */
  rtol?: number;
  /** Absolute tolerance (default 1e-9). */
  atol?: number;
  /** Names the check in the error message. */
  label?: string;
}

function normals(n: number, rng: Rng): Float64Array {
  return Float64Array.from({ length: n }, () => rng.normal());
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function f64Tensor(values: Float64Array, shape: readonly number[]): Tensor {
  return new Tensor(shape, "f32", reference64Device, reference64Device.upload(values, "f32"));
}

/**
 * Check `f`'s VJP at `primals` (f32 tensors on `reference64Device`) against central finite
 * differences. `f` returns a pytree of tensors; its float leaves get cotangents.
 */
export async function checkVjp(
  f: (...primals: Tensor[]) => PyTree,
  primals: readonly Tensor[],
  opts: VjpCheckOptions = {},
): Promise<void> {
  const { seed = 0, eps = 1e-6, rtol = 1e-6, atol = 1e-9, label = "vjp" } = opts;
  for (const x of primals) {
    if (x.device !== reference64Device || x.dtype !== "f32") {
      throw new Error(`${label}: checkVjp needs f32 primals on reference64Device, got ${x}`);
    }
  }
  const rng = new Rng(seed);
  await scopeAsync(async () => {
    const xs = await Promise.all(primals.map((x) => x.data()));
    const dirs = primals.map((x) => normals(x.size, rng));

    // ⟨vjp(ḡ), v⟩
    const [out, back] = vjp(f, ...primals);
    const outLeaves = leaves(out);
    const cots = outLeaves.map((o) =>
      isFloat(o.dtype) ? normals(o.size, rng) : new Float64Array(o.size)
    );
    const ct = back(unflatten(out, outLeaves.map((o, i) => f64Tensor(cots[i]!, o.shape))) as never);
    const grads = leaves(ct);
    let lhs = 0;
    for (let i = 0; i < grads.length; i++) {
      const g = grads[i]!;
      if (g.size !== primals[i]!.size) {
        throw new Error(`${label}: cotangent ${fmtShape(g.shape)} for primal ${primals[i]}`);
      }
      lhs += dot(await g.data(), dirs[i]!);
    }

    // ⟨ḡ, (f(x+εv) − f(x−εv)) / 2ε⟩
    const shifted = (sign: number) =>
      leaves(f(...primals.map((x, i) => {
        const v = xs[i]!, d = dirs[i]!;
        return f64Tensor(Float64Array.from(v, (a, j) => a + sign * eps * d[j]!), x.shape);
      })));
    const plus = shifted(1), minus = shifted(-1);
    let rhs = 0;
    for (let i = 0; i < plus.length; i++) {
      if (!isFloat(plus[i]!.dtype)) continue;
      const p = await plus[i]!.data(), m = await minus[i]!.data();
      rhs += dot(cots[i]!, Float64Array.from(p, (a, j) => (a - m[j]!) / (2 * eps)));
    }

    const allowed = atol + rtol * Math.max(Math.abs(lhs), Math.abs(rhs));
    if (!(Math.abs(lhs - rhs) <= allowed)) {
      throw new Error(
        `${label}: ⟨vjp(ḡ), v⟩ = ${lhs} but finite differences give ${rhs} ` +
          `(|diff| ${Math.abs(lhs - rhs)} > ${allowed}; eps ${eps}, seed ${seed})`,
      );
    }
  });
}
