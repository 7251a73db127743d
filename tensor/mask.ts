// Mask expressions (DESIGN 2.4): a tiny typed expression tree over the query index `q`, the
// key index `k`, the number of keys `n`, per-token integer arrays and constants. The same
// tree is evaluated by the reference backend and compiled to a WGSL `allowed(b, q, k, n)`
// spliced into the fused attention kernel. Its canonical string keys the pipeline cache.

type IntOp = "add" | "sub" | "mul";
type CmpOp = "lt" | "le" | "gt" | "ge" | "eq" | "ne";
type BoolOp = "and" | "or";

/** A node of a mask expression. */
export type MaskNode =
  | { op: "q" | "k" | "n" }
  | { op: "const"; value: number }
  | { op: "bool"; value: boolean }
  | { op: "token"; array: number; at: MaskNode }
  | { op: IntOp | CmpOp | BoolOp; a: MaskNode; b: MaskNode }
  | { op: "not"; a: MaskNode };

const intOps: Record<IntOp, [string, (a: number, b: number) => number]> = {
  add: ["+", (a, b) => a + b],
  sub: ["-", (a, b) => a - b],
  mul: ["*", (a, b) => a * b],
};
const cmpOps: Record<CmpOp, [string, (a: number, b: number) => boolean]> = {
  lt: ["<", (a, b) => a < b],
  le: ["<=", (a, b) => a <= b],
  gt: [">", (a, b) => a > b],
  ge: [">=", (a, b) => a >= b],
  eq: ["==", (a, b) => a === b],
  ne: ["!=", (a, b) => a !== b],
};

/** An integer-valued mask expression (`q`, `k`, `n`, constants, token arrays, arithmetic). */
export class MaskInt {
  constructor(readonly node: MaskNode) {}
  add(o: MaskInt | number): MaskInt {
    return new MaskInt({ op: "add", a: this.node, b: lift(o) });
  }
  sub(o: MaskInt | number): MaskInt {
    return new MaskInt({ op: "sub", a: this.node, b: lift(o) });
  }
  mul(o: MaskInt | number): MaskInt {
    return new MaskInt({ op: "mul", a: this.node, b: lift(o) });
  }
  lt(o: MaskInt | number): MaskBool {
    return this.#cmp("lt", o);
  }
  le(o: MaskInt | number): MaskBool {
    return this.#cmp("le", o);
  }
  gt(o: MaskInt | number): MaskBool {
    return this.#cmp("gt", o);
  }
  ge(o: MaskInt | number): MaskBool {
    return this.#cmp("ge", o);
  }
  eq(o: MaskInt | number): MaskBool {
    return this.#cmp("eq", o);
  }
  ne(o: MaskInt | number): MaskBool {
    return this.#cmp("ne", o);
  }
  #cmp(op: CmpOp, o: MaskInt | number): MaskBool {
    return new MaskBool({ op, a: this.node, b: lift(o) });
  }
}

/** A boolean mask expression: whether query q may attend key k. */
export class MaskBool {
  constructor(readonly node: MaskNode) {}
  and(o: MaskBool): MaskBool {
    return new MaskBool({ op: "and", a: this.node, b: o.node });
  }
  or(o: MaskBool): MaskBool {
    return new MaskBool({ op: "or", a: this.node, b: o.node });
  }
  not(): MaskBool {
    return new MaskBool({ op: "not", a: this.node });
  }
  /** The canonical text of the expression (also the pipeline-cache key). */
  toString(): string {
    return show(this.node);
  }
}

function lift(o: MaskInt | number): MaskNode {
  if (typeof o === "number") {
    if (!Number.isInteger(o)) throw new Error(`mask: constants must be integers, got ${o}`);
    return { op: "const", value: o };
  }
  return o.node;
}

/** The variables a mask is written over. */
export interface MaskVars {
  /** Query position (absolute: includes the KV-cache offset). */
  readonly q: MaskInt;
  /** Key position. */
  readonly k: MaskInt;
  /** Number of keys. */
  readonly n: MaskInt;
  /** Value of per-token i32 array `array` (an extra attention input, e.g. document ids) at a position. */
  token(array: number, at: MaskInt): MaskInt;
}

/** The variables, for building expressions. */
export const maskVars: MaskVars = {
  q: new MaskInt({ op: "q" }),
  k: new MaskInt({ op: "k" }),
  n: new MaskInt({ op: "n" }),
  token: (array, at) => new MaskInt({ op: "token", array, at: at.node }),
};

/** The constant `true` mask (every key allowed). */
export const always: MaskBool = new MaskBool({ op: "bool", value: true });

/** How many token arrays an expression reads (highest array index + 1). */
export function tokenArrayCount(node: MaskNode): number {
  switch (node.op) {
    case "token":
      return Math.max(node.array + 1, tokenArrayCount(node.at));
    case "not":
      return tokenArrayCount(node.a);
    case "q":
    case "k":
    case "n":
    case "const":
    case "bool":
      return 0;
    default:
      return Math.max(tokenArrayCount(node.a), tokenArrayCount(node.b));
  }
}

/** Evaluate for one (q, k); `token(array, pos)` reads the token arrays of the current row. */
export function evalMask(
  node: MaskNode,
  q: number,
  k: number,
  n: number,
  token: (array: number, pos: number) => number,
): number | boolean {
  const ev = (x: MaskNode): number | boolean => {
    switch (x.op) {
      case "q":
        return q;
      case "k":
        return k;
      case "n":
        return n;
      case "const":
      case "bool":
        return x.value;
      case "token":
        return token(x.array, ev(x.at) as number);
      case "not":
        return !ev(x.a);
      case "and":
        return (ev(x.a) as boolean) && (ev(x.b) as boolean);
      case "or":
        return (ev(x.a) as boolean) || (ev(x.b) as boolean);
      case "add":
      case "sub":
      case "mul":
        return intOps[x.op][1](ev(x.a) as number, ev(x.b) as number);
      default:
        return cmpOps[x.op][1](ev(x.a) as number, ev(x.b) as number);
    }
  };
  return ev(node);
}

/**
 * WGSL for the expression over `q`, `k`, `n` (i32); `token(array, pos)` renders a token-array
 * read (default: a call `token(array, pos)` the kernel defines).
 */
export function maskToWgsl(
  node: MaskNode,
  token: (array: number, pos: string) => string = (a, pos) => `token(${a}u, ${pos})`,
): string {
  const w = (x: MaskNode) => maskToWgsl(x, token);
  switch (node.op) {
    case "q":
    case "k":
    case "n":
      return node.op;
    case "const":
      return `(${node.value}i)`;
    case "bool":
      return `${node.value}`;
    case "token":
      return token(node.array, w(node.at));
    case "not":
      return `(!${w(node.a)})`;
    case "and":
      return `(${w(node.a)} && ${w(node.b)})`;
    case "or":
      return `(${w(node.a)} || ${w(node.b)})`;
    case "add":
    case "sub":
    case "mul":
      return `(${w(node.a)} ${intOps[node.op][0]} ${w(node.b)})`;
    default:
      return `(${w(node.a)} ${cmpOps[node.op][0]} ${w(node.b)})`;
  }
}

function show(node: MaskNode): string {
  switch (node.op) {
    case "q":
    case "k":
    case "n":
      return node.op;
    case "const":
    case "bool":
      return String(node.value);
    case "token":
      return `token${node.array}[${show(node.at)}]`;
    case "not":
      return `not(${show(node.a)})`;
    default:
      return `${node.op}(${show(node.a)}, ${show(node.b)})`;
  }
}
