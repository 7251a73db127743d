// Param trees <-> Hugging Face tensor names. `model.layers.3.mlp.up_proj.weight` is the path
// tree.model.layers[3].mlp.up_proj.weight: numeric segments become array indices, so a
// checkpoint's names and the params pytree correspond one to one.
import { Tensor } from "../tensor/tensor.ts";

/** A params pytree: nested objects/arrays with tensor leaves. */
export type Params = { [key: string]: Params | Params[] | Tensor } | Params[] | Tensor;

/** Build a params tree from dotted names. */
export function treeFromNames(
  flat: ReadonlyMap<string, Tensor> | Record<string, Tensor>,
): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  const entries = flat instanceof Map ? [...flat.entries()] : Object.entries(flat);
  for (const [name, tensor] of entries) {
    const parts = name.split(".");
    let node: Record<string | number, unknown> = root;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const key: string | number = Array.isArray(node) ? Number(part) : part;
      if (i === parts.length - 1) {
        if (node[key] !== undefined) {
          throw new Error(`params: duplicate or conflicting name '${name}'`);
        }
        node[key] = tensor;
        break;
      }
      node[key] ??= /^\d+$/.test(parts[i + 1]!) ? [] : {};
      const child = node[key];
      if (child instanceof Tensor || typeof child !== "object" || child === null) {
        throw new Error(
          `params: name '${name}' conflicts with a tensor at '${parts.slice(0, i + 1).join(".")}'`,
        );
      }
      node = child as Record<string | number, unknown>;
    }
  }
  return root;
}

/** The dotted names and tensors of a params tree (the inverse of `treeFromNames`). */
export function namesFromTree(tree: unknown, prefix = ""): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const walk = (node: unknown, path: string) => {
    if (node instanceof Tensor) out.set(path, node);
    else if (Array.isArray(node)) {
      node.forEach((x, i) => x !== undefined && walk(x, path ? `${path}.${i}` : String(i)));
    } else if (node !== null && typeof node === "object") {
      for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k);
    }
  };
  walk(tree, prefix);
  return out;
}

/** The node at a dotted path ("model.layers.0.mlp.up_proj"), or undefined. */
export function nodeAt(tree: unknown, path: string): unknown {
  let node: unknown = tree;
  for (const key of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** A copy of `tree` with the node at `path` replaced by `f(node)` (copies along the path only). */
export function updateAt<T>(tree: T, path: string, f: (node: unknown) => unknown): T {
  const go = (node: unknown, keys: string[]): unknown => {
    if (keys.length === 0) return f(node);
    const [key, ...rest] = keys as [string, ...string[]];
    if (node === null || typeof node !== "object" || !(key in node)) {
      throw new Error(`params: the tree has no node '${path}'`);
    }
    if (Array.isArray(node)) {
      const copy = [...node];
      copy[Number(key)] = go(node[Number(key)], rest);
      return copy;
    }
    return { ...node, [key]: go((node as Record<string, unknown>)[key], rest) };
  };
  return go(tree, path.split(".")) as T;
}

/** A copy of `tree` with the named leaves replaced (e.g. the trained subset of a model). */
export function withTensors<T>(tree: T, named: Readonly<Record<string, Tensor>>): T {
  let out = tree;
  for (const [name, t] of Object.entries(named)) out = updateAt(out, name, () => t);
  return out;
}
