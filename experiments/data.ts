// Dataset files: a JSON array or JSONL of rows `{"messages": […]}` (rendered by the model's
// chat template), `{"text": …}` or `{"input_ids": […]}`. Errors name the file and line.
import type { ChatMessage, QwenTokenizer } from "../qwen/tokenizer.ts";
import { readTextFile } from "../qwen/files.ts";
import { UserError } from "./cli.ts";

/** One row as read. */
export type Row =
  | { kind: "messages"; messages: ChatMessage[]; line: number }
  | { kind: "text"; text: string; line: number }
  | { kind: "input_ids"; ids: number[]; line: number };

/** A malformed row, skipped and counted (fatal with --strict). */
export interface RowProblem {
  line: number;
  message: string;
}

/** Read rows from a JSON array or JSONL file. */
export async function readRows(path: string): Promise<{ rows: Row[]; problems: RowProblem[] }> {
  const text = await readTextFile(path, UserError);
  const rows: Row[] = [];
  const problems: RowProblem[] = [];
  const trimmed = text.trimStart();
  let items: { value: unknown; line: number }[];
  if (trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
    }
    items = (parsed as unknown[]).map((value, i) => ({ value, line: i + 1 }));
  } else {
    items = [];
    text.split("\n").forEach((raw, i) => {
      if (raw.trim() === "") return;
      try {
        items.push({ value: JSON.parse(raw), line: i + 1 });
      } catch {
        problems.push({ line: i + 1, message: "not valid JSON" });
      }
    });
    if (
      items.length === 0 && problems.length > 0 &&
      problems.length === text.split("\n").filter((l) => l.trim()).length
    ) {
      throw new UserError(`${path}: not JSON or JSONL (line 1: not valid JSON)`);
    }
  }
  for (const { value, line } of items) {
    const row = toRow(value, line);
    if (typeof row === "string") problems.push({ line, message: row });
    else rows.push(row);
  }
  return { rows, problems };
}

function toRow(value: unknown, line: number): Row | string {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return "row is not an object";
  }
  const v = value as Record<string, unknown>;
  if ("messages" in v) {
    const m = v.messages;
    if (!Array.isArray(m) || m.length === 0) return "'messages' must be a non-empty list";
    for (const [i, msg] of m.entries()) {
      if (
        msg === null || typeof msg !== "object" || typeof msg.role !== "string" ||
        typeof msg.content !== "string"
      ) {
        return `messages[${i}] needs string 'role' and 'content'`;
      }
    }
    return { kind: "messages", messages: m as ChatMessage[], line };
  }
  if ("text" in v) {
    if (typeof v.text !== "string") return "'text' must be a string";
    return { kind: "text", text: v.text, line };
  }
  if ("input_ids" in v) {
    const ids = v.input_ids;
    if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x) && x >= 0)) {
      return "'input_ids' must be a list of non-negative integers";
    }
    return { kind: "input_ids", ids: ids as number[], line };
  }
  return "row needs 'messages', 'text' or 'input_ids'";
}

/** Token ids of a row (chat rows through the chat template, without generation prompt). */
export function rowIds(row: Row, tokenizer: QwenTokenizer | null, path: string): number[] {
  if (row.kind === "input_ids") return row.ids;
  if (!tokenizer) {
    throw new UserError(
      `${path}: line ${row.line}: a ${row.kind} row needs a tokenizer, but the model directory has none`,
    );
  }
  const text = row.kind === "text" ? row.text : tokenizer.applyChatTemplate(row.messages);
  return tokenizer.encode(text);
}
