// Elementwise ops with numpy broadcasting: unary math, binary arithmetic, comparisons,
// `where` and `cast`. Each entry is one op: reference function, WGSL expression, VJP rule.
import type { DType } from "../dtype.ts";
import { computeType, isFloat } from "../dtype.ts";
import {
  apply1,
  fail,
  floats,
  floatsFrom,
  type Meta,
  nonDifferentiable,
  type OpDef,
  type VjpRule,
} from "../op.ts";
import { broadcastIndex, broadcastShapes, sameShape } from "../shape.ts";
import { fmtShape, sizeOf, Tensor } from "../tensor.ts";
import { full } from "./fill.ts";
import { broadcastTo, reshape } from "./layout.ts";
import { sum } from "./reduce.ts";

// ---------------------------------------------------------------- unary

interface UnarySpec {
  /** The math, on one f64 value. */
  ref: (x: number) => number;
  /** The same in WGSL, over `x0`. */
  wgsl: string;
  /** Accepts i32 (then computes and returns i32). */
  int?: boolean;
  /** dL/dx from x, y = f(x) and the cotangent g. */
  vjp: (g: Tensor, x: Tensor, y: Tensor) => Tensor;
}

function unary(name: string, spec: UnarySpec): OpDef<Record<never, never>> {
  return {
    name,
    infer([x]) {
      if (!spec.int && !isFloat(x!.dtype)) {
        fail(name, `needs a float tensor, got ${x!.dtype} ${fmtShape(x!.shape)}`);
      }
      return [{ shape: x!.shape, dtype: computeType(x!.dtype) }];
    },
    reference([x]) {
      const v = x!.values;
      const out = v instanceof Int32Array ? new Int32Array(v.length) : floats(v.length);
      for (let i = 0; i < v.length; i++) out[i] = spec.ref(v[i]!);
      return [out];
    },
    webgpu: (gpu, inputs, _attrs, [out]) => [gpu.map(spec.wgsl, inputs, out!)],
    vjp: ([g], { inputs: [x], outputs: [y] }) => [g && spec.vjp(g, x!, y!)],
  };
}

const sigmoidRef = (x: number) => 1 / (1 + Math.exp(-x));

/** The unary op table. */
export const unaryOps = {
  neg: unary("neg", { ref: (x) => -x, wgsl: "-x0", int: true, vjp: (g) => neg(g) }),
  abs: unary("abs", {
    ref: Math.abs,
    wgsl: "abs(x0)",
    int: true,
    vjp: (g, x) => where(lt(x, 0), neg(g), g),
  }),
  exp: unary("exp", { ref: Math.exp, wgsl: "exp(x0)", vjp: (g, _x, y) => mul(g, y) }),
  log: unary("log", { ref: Math.log, wgsl: "log(x0)", vjp: (g, x) => div(g, x) }),
  sqrt: unary("sqrt", { ref: Math.sqrt, wgsl: "sqrt(x0)", vjp: (g, _x, y) => div(mul(g, 0.5), y) }),
  rsqrt: unary("rsqrt", {
    ref: (x) => 1 / Math.sqrt(x),
    wgsl: "inverseSqrt(x0)",
    vjp: (g, _x, y) => mul(g, mul(mul(y, mul(y, y)), -0.5)),
  }),
  tanh: unary("tanh", {
    ref: Math.tanh,
    wgsl: "tanh(x0)",
    vjp: (g, _x, y) => mul(g, sub(1, mul(y, y))),
  }),
  sigmoid: unary("sigmoid", {
    ref: sigmoidRef,
    wgsl: "1.0 / (1.0 + exp(-x0))",
    vjp: (g, _x, y) => mul(g, mul(y, sub(1, y))),
  }),
  silu: unary("silu", {
    ref: (x) => x * sigmoidRef(x),
    wgsl: "x0 / (1.0 + exp(-x0))",
    vjp: (g, x) => {
      const s = sigmoid(x);
      return mul(g, mul(s, add(1, mul(x, sub(1, s)))));
    },
  }),
  sin: unary("sin", { ref: Math.sin, wgsl: "sin(x0)", vjp: (g, x) => mul(g, cos(x)) }),
  cos: unary("cos", { ref: Math.cos, wgsl: "cos(x0)", vjp: (g, x) => neg(mul(g, sin(x))) }),
} satisfies Record<string, OpDef>;

/** -x */
export const neg = (x: Tensor): Tensor => apply1(unaryOps.neg, [x], {});
/** |x| */
export const abs = (x: Tensor): Tensor => apply1(unaryOps.abs, [x], {});
/** e^x */
export const exp = (x: Tensor): Tensor => apply1(unaryOps.exp, [x], {});
/** Natural logarithm. */
export const log = (x: Tensor): Tensor => apply1(unaryOps.log, [x], {});
/** √x */
export const sqrt = (x: Tensor): Tensor => apply1(unaryOps.sqrt, [x], {});
/** 1/√x */
export const rsqrt = (x: Tensor): Tensor => apply1(unaryOps.rsqrt, [x], {});
/** Hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor => apply1(unaryOps.tanh, [x], {});
/** 1 / (1 + e^-x) */
export const sigmoid = (x: Tensor): Tensor => apply1(unaryOps.sigmoid, [x], {});
/** x · sigmoid(x) (SiLU / swish). */
export const silu = (x: Tensor): Tensor => apply1(unaryOps.silu, [x], {});
/** sin x */
export const sin = (x: Tensor): Tensor => apply1(unaryOps.sin, [x], {});
/** cos x */
export const cos = (x: Tensor): Tensor => apply1(unaryOps.cos, [x], {});

// ---------------------------------------------------------------- binary

interface BinarySpec {
  ref: (a: number, b: number) => number;
  /** WGSL over `x0`, `x1` (both f32 or both i32). */
  wgsl: string;
  int?: boolean;
  /** Cotangents before un-broadcasting. */
  vjp?: (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor, Tensor];
  /** Comparison: returns i32 0/1, no derivative. */
  compare?: boolean;
}

function binaryInfer(name: string, int: boolean, compare: boolean) {
  return ([a, b]: readonly Meta[]): Meta[] => {
    const ta = computeType(a!.dtype), tb = computeType(b!.dtype);
    if (ta !== tb) {
      fail(
        name,
        `dtype mismatch: ${a!.dtype} ${fmtShape(a!.shape)} vs ${b!.dtype} ${fmtShape(b!.shape)}`,
      );
    }
    if (!int && ta === "i32") fail(name, `needs float tensors, got i32 ${fmtShape(a!.shape)}`);
    const shape = broadcastShapes(name, [a!.shape, b!.shape]);
    return [{ shape, dtype: compare ? "i32" : ta }];
  };
}

function binary(name: string, spec: BinarySpec): OpDef<Record<never, never>> {
  const vjp: VjpRule<Record<never, never>> | typeof nonDifferentiable = spec.vjp
    ? ([g], { inputs: [a, b], outputs: [y], needsGrad: [needA, needB] }) => {
      if (!g) return [undefined, undefined];
      const [ga, gb] = spec.vjp!(g, a!, b!, y!);
      // the reduction back to a broadcast operand's shape is the costly part; skip it when unused
      return [needA ? unbroadcast(ga, a!) : undefined, needB ? unbroadcast(gb, b!) : undefined];
    }
    : nonDifferentiable;
  return {
    name,
    infer: binaryInfer(name, spec.int ?? false, spec.compare ?? false),
    reference([a, b], _attrs, [out]) {
      const n = sizeOf(out!.shape);
      const ia = broadcastIndex(a!.shape, out!.shape), ib = broadcastIndex(b!.shape, out!.shape);
      const res = out!.dtype === "i32" ? new Int32Array(n) : floats(n);
      const va = a!.values, vb = b!.values;
      for (let i = 0; i < n; i++) res[i] = spec.ref(va[ia[i]!]!, vb[ib[i]!]!);
      return [res];
    },
    webgpu: (gpu, inputs, _attrs, [out]) => [gpu.map(spec.wgsl, inputs, out!)],
    vjp,
  };
}

const cmp = (name: string, ref: (a: number, b: number) => boolean, op: string) =>
  binary(name, {
    ref: (a, b) => (ref(a, b) ? 1 : 0),
    wgsl: `i32(x0 ${op} x1)`,
    int: true,
    compare: true,
  });

/** The binary op table. */
export const binaryOps = {
  add: binary("add", { ref: (a, b) => a + b, wgsl: "x0 + x1", int: true, vjp: (g) => [g, g] }),
  sub: binary("sub", { ref: (a, b) => a - b, wgsl: "x0 - x1", int: true, vjp: (g) => [g, neg(g)] }),
  mul: binary("mul", {
    ref: (a, b) => a * b,
    wgsl: "x0 * x1",
    int: true,
    vjp: (g, a, b) => [mul(g, b), mul(g, a)],
  }),
  div: binary("div", {
    ref: (a, b) => a / b,
    wgsl: "x0 / x1",
    vjp: (g, a, b) => [div(g, b), neg(div(mul(g, a), mul(b, b)))],
  }),
  pow: binary("pow", {
    ref: Math.pow,
    wgsl: "pow(x0, x1)",
    // d/da = b·a^(b-1); d/db = y·ln a (defined for a > 0, as in JAX)
    vjp: (g, a, b, y) => [mul(g, mul(b, pow(a, sub(b, 1)))), mul(g, mul(y, log(a)))],
  }),
  maximum: binary("maximum", {
    ref: Math.max,
    wgsl: "max(x0, x1)",
    int: true,
    vjp: (g, a, b) => {
      const zero = full([], 0, g.dtype, g.device);
      return [where(ge(a, b), g, zero), where(ge(a, b), zero, g)];
    },
  }),
  minimum: binary("minimum", {
    ref: Math.min,
    wgsl: "min(x0, x1)",
    int: true,
    vjp: (g, a, b) => {
      const zero = full([], 0, g.dtype, g.device);
      return [where(le(a, b), g, zero), where(le(a, b), zero, g)];
    },
  }),
  lt: cmp("lt", (a, b) => a < b, "<"),
  le: cmp("le", (a, b) => a <= b, "<="),
  gt: cmp("gt", (a, b) => a > b, ">"),
  ge: cmp("ge", (a, b) => a >= b, ">="),
  eq: cmp("eq", (a, b) => a === b, "=="),
  ne: cmp("ne", (a, b) => a !== b, "!="),
} satisfies Record<string, OpDef>;

/** A tensor or a plain number (a scalar of the other operand's dtype). */
export type Operand = Tensor | number;

function binaryCall(def: OpDef, a: Operand, b: Operand): Tensor {
  if (a instanceof Tensor && b instanceof Tensor) return apply1(def, [a, b], {});
  if (a instanceof Tensor) {
    return apply1(def, [a, full([], b as number, computeType(a.dtype), a.device)], {});
  }
  if (b instanceof Tensor) return apply1(def, [full([], a, computeType(b.dtype), b.device), b], {});
  throw new Error(`${def.name}: needs at least one tensor operand`);
}

/** a + b, broadcasting. */
export const add = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.add, a, b);
/** a − b, broadcasting. */
export const sub = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.sub, a, b);
/** a · b, broadcasting. */
export const mul = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.mul, a, b);
/** a / b, broadcasting. */
export const div = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.div, a, b);
/** a^b, broadcasting. */
export const pow = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.pow, a, b);
/** Elementwise maximum. */
export const maximum = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.maximum, a, b);
/** Elementwise minimum. */
export const minimum = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.minimum, a, b);
/** a < b as i32 0/1. */
export const lt = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.lt, a, b);
/** a ≤ b as i32 0/1. */
export const le = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.le, a, b);
/** a > b as i32 0/1. */
export const gt = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.gt, a, b);
/** a ≥ b as i32 0/1. */
export const ge = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.ge, a, b);
/** a = b as i32 0/1. */
export const eq = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.eq, a, b);
/** a ≠ b as i32 0/1. */
export const ne = (a: Operand, b: Operand): Tensor => binaryCall(binaryOps.ne, a, b);

/** Sum a broadcast cotangent back to the shape of `x`. */
export function unbroadcast(g: Tensor, x: Tensor): Tensor {
  if (sameShape(g.shape, x.shape)) return g;
  const lead = g.rank - x.rank;
  const axes: number[] = [];
  for (let d = 0; d < g.rank; d++) {
    if (d < lead || (x.shape[d - lead] === 1 && g.shape[d] !== 1)) axes.push(d);
  }
  return reshape(axes.length ? sum(g, axes) : g, x.shape);
}

// ---------------------------------------------------------------- where, cast

/** where(cond, a, b): a where cond ≠ 0, else b; all three broadcast. */
export const whereOp: OpDef<Record<never, never>> = {
  name: "where",
  infer([c, a, b]) {
    if (c!.dtype !== "i32") {
      fail("where", `condition must be i32, got ${c!.dtype} ${fmtShape(c!.shape)}`);
    }
    const ta = computeType(a!.dtype), tb = computeType(b!.dtype);
    if (ta !== tb) {
      fail(
        "where",
        `dtype mismatch: ${a!.dtype} ${fmtShape(a!.shape)} vs ${b!.dtype} ${fmtShape(b!.shape)}`,
      );
    }
    return [{ shape: broadcastShapes("where", [c!.shape, a!.shape, b!.shape]), dtype: ta }];
  },
  reference([c, a, b], _attrs, [out]) {
    const n = sizeOf(out!.shape);
    const ic = broadcastIndex(c!.shape, out!.shape);
    const ia = broadcastIndex(a!.shape, out!.shape), ib = broadcastIndex(b!.shape, out!.shape);
    const res = out!.dtype === "i32" ? new Int32Array(n) : floats(n);
    for (let i = 0; i < n; i++) {
      res[i] = c!.values[ic[i]!] !== 0 ? a!.values[ia[i]!]! : b!.values[ib[i]!]!;
    }
    return [res];
  },
  webgpu: (gpu, inputs, _attrs, [out]) => [gpu.map("select(x2, x1, x0 != 0)", inputs, out!)],
  vjp: ([g], { inputs: [c, a, b] }) => {
    if (!g) return [undefined, undefined, undefined];
    const zero = full([], 0, g.dtype, g.device);
    return [undefined, unbroadcast(where(c!, g, zero), a!), unbroadcast(where(c!, zero, g), b!)];
  },
};

/** Elementwise select: `a` where `cond` ≠ 0, else `b`. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : null;
  const dtype = like ? computeType(like.dtype) : "f32";
  const ta = a instanceof Tensor ? a : full([], a, dtype, cond.device);
  const tb = b instanceof Tensor ? b : full([], b, dtype, cond.device);
  return apply1(whereOp, [cond, ta, tb], {});
}

/** Convert to another dtype (floats round to nearest even; float → i32 truncates). */
export const castOp: OpDef<{ dtype: DType }> = {
  name: "cast",
  infer: ([x], { dtype }) => [{ shape: x!.shape, dtype }],
  reference([x], { dtype }) {
    const v = x!.values;
    return [dtype === "i32" ? Int32Array.from(v, Math.trunc) : floatsFrom(v)];
  },
  webgpu: (gpu, [x], { dtype }, [out]) => [gpu.cast(x!, out!, dtype)],
  vjp: ([g], { inputs: [x] }) => [g && isFloat(x!.dtype) ? g : undefined],
};

/** Convert `x` to `dtype` (a no-op when it already has it). */
export function cast(x: Tensor, dtype: DType): Tensor {
  return x.dtype === dtype ? x : apply1(castOp, [x], { dtype });
}

/** Broadcast `x` (a helper for VJP rules that need an explicit full-size operand). */
export function expandAs(x: Tensor, like: Tensor): Tensor {
  return sameShape(x.shape, like.shape) ? x : broadcastTo(x, like.shape);
}
