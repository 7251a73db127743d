// Token ids of a data set's rows, tokenised in a worker when any row needs the tokenizer:
// the tokenizer's ~0.2 GB of JavaScript heap leaves with the worker, before the weights load
// (a heap, once grown, is not given back to the system).
import type { Row } from "./data.ts";
import { UserError } from "./cli.ts";

/** What the worker answers. */
export type TokenizeReply = { ids: number[][] } | { error: string; exitCode: number };

/** Each row's token ids (rowIds with the directory's tokenizer), in row order. */
export async function tokenizeRows(
  dir: string,
  rows: readonly Row[],
  path: string,
): Promise<number[][]> {
  if (rows.every((r) => r.kind === "input_ids")) {
    return rows.map((r) => (r as { ids: number[] }).ids);
  }
  const worker = new Worker(new URL("./tokenize_worker.ts", import.meta.url).href, {
    type: "module",
  });
  try {
    const reply = await new Promise<TokenizeReply>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<TokenizeReply>) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`tokenizer worker: ${e.message}`));
      };
      worker.postMessage({ dir, rows, path });
    });
    if ("error" in reply) throw new UserError(reply.error, reply.exitCode);
    return reply.ids;
  } finally {
    worker.terminate();
  }
}
