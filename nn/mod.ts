/**
 * Neural-network building blocks as pure functions over param pytrees.
 * @module
 */
export * from "./masks.ts";
export * from "./metrics.ts";
