/**
 * Functional reverse-mode autodiff over pytrees (DESIGN 4): `grad`, `valueAndGrad`, `vjp`,
 * `stopGradient`, and pytree utilities.
 * @module
 */
export { grad, stopGradient, valueAndGrad, vjp } from "./grad.ts";
export { forEachTensor, leaves, mapTensors, type PyTree, unflatten } from "../tensor/pytree.ts";
