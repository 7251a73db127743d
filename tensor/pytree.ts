import { Tensor } from "./tensor.ts";

/** A nested structure of plain objects and arrays whose leaves are tensors (or other values). */
export type PyTree = unknown;

/** Visit every tensor leaf of a pytree, depth first, arrays in order and object keys sorted. */
export function forEachTensor(tree: PyTree, visit: (t: Tensor) => void): void {
  if (tree instanceof Tensor) visit(tree);
  else if (Array.isArray(tree)) { for (const x of tree) forEachTensor(x, visit); }
  else if (isPlainObject(tree)) {
    for (const key of Object.keys(tree).sort()) forEachTensor(tree[key], visit);
  }
}

/** The tensor leaves of a pytree in `forEachTensor` order. */
export function leaves(tree: PyTree): Tensor[] {
  const out: Tensor[] = [];
  forEachTensor(tree, (t) => out.push(t));
  return out;
}

/** A pytree of the same structure with every tensor leaf replaced by `f(leaf)`. */
export function mapTensors<T>(tree: T, f: (t: Tensor) => unknown): T {
  if (tree instanceof Tensor) return f(tree) as T;
  if (Array.isArray(tree)) return tree.map((x) => mapTensors(x, f)) as T;
  if (isPlainObject(tree)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(tree)) out[key] = mapTensors(tree[key], f);
    return out as T;
  }
  return tree;
}

/** Rebuild a pytree from `tree`'s structure and new leaves in `forEachTensor` order. */
export function unflatten<T>(tree: T, newLeaves: readonly unknown[]): T {
  let i = 0;
  const rebuild = (node: unknown): unknown => {
    if (node instanceof Tensor) return newLeaves[i++];
    if (Array.isArray(node)) return node.map(rebuild);
    if (isPlainObject(node)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(node).sort()) out[key] = rebuild(node[key]);
      for (const key of Object.keys(node)) if (!(key in out)) out[key] = node[key];
      // keep the caller's key order
      const ordered: Record<string, unknown> = {};
      for (const key of Object.keys(node)) ordered[key] = out[key];
      return ordered;
    }
    return node;
  };
  const result = rebuild(tree) as T;
  if (i !== newLeaves.length) {
    throw new Error(`unflatten: tree has ${i} tensor leaves, got ${newLeaves.length}`);
  }
  return result;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== "object") return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}
