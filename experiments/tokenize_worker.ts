// The worker of `tokenizeRows`: loads the directory's tokenizer, answers every row's ids.
import { UserError } from "./cli.ts";
import { type Row, rowIds } from "./data.ts";
import { openTokenizer } from "./model.ts";
import type { TokenizeReply } from "./tokenize_rows.ts";

/** This worker's side of the channel (typed here: the worker lib is not in the checked program). */
const port = self as unknown as {
  onmessage: (e: MessageEvent<{ dir: string; rows: Row[]; path: string }>) => void;
  postMessage(reply: TokenizeReply): void;
};

port.onmessage = async (e) => {
  const { dir, rows, path } = e.data;
  let reply: TokenizeReply;
  try {
    const tokenizer = await openTokenizer(dir);
    reply = { ids: rows.map((row) => rowIds(row, tokenizer, path)) };
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0]! : String(err);
    reply = { error: message, exitCode: err instanceof UserError ? err.exitCode : 1 };
  }
  port.postMessage(reply);
};
