import { forEachTensor, type PyTree } from "./pytree.ts";
import type { Tensor } from "./tensor.ts";

// Deterministic lifetimes (DESIGN 5): every tensor created while a scope is open belongs to
// the innermost scope; when the scope ends, the tensors it returns move to the enclosing
// scope and every other one is disposed. Outside any scope, tensors live until `dispose()`.
const stack: Set<Tensor>[] = [];

/** Called by the Tensor constructor. */
export function registerInScope(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

/**
 * Run `fn`; dispose every tensor it created except those in its result.
 * @example
 * const loss = scope(() => mean(square(sub(predict(params, x), y))));
 */
export function scope<T>(fn: () => T): T {
  const own = new Set<Tensor>();
  stack.push(own);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of own) t.dispose();
    throw e;
  }
  if (result instanceof Promise) {
    stack.pop();
    for (const t of own) t.dispose();
    throw new Error("scope: fn returned a Promise; use scopeAsync");
  }
  stack.pop();
  close(own, result);
  return result;
}

/**
 * `scope` for async work. Scopes must not interleave: do not run two `scopeAsync` bodies
 * concurrently.
 */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const own = new Set<Tensor>();
  stack.push(own);
  const depth = stack.length;
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    stack.length = depth - 1;
    for (const t of own) t.dispose();
    throw e;
  }
  if (stack.length !== depth || stack[depth - 1] !== own) {
    throw new Error("scopeAsync: scopes interleaved (two async scopes ran concurrently)");
  }
  stack.pop();
  close(own, result);
  return result;
}

/** Take tensors out of every scope: they live until disposed by hand. Returns `tree`. */
export function keep<T extends PyTree>(tree: T): T {
  forEachTensor(tree, (t) => {
    for (const s of stack) s.delete(t);
  });
  return tree;
}

function close(own: Set<Tensor>, result: unknown): void {
  const parent = stack[stack.length - 1];
  forEachTensor(result, (t) => {
    if (own.delete(t)) parent?.add(t);
  });
  for (const t of own) t.dispose();
}
