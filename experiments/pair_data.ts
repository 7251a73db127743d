// Pairs for contrastive training (`{"text", "positive"}`, AnglE's format B) and graded
// sentence pairs for STS evaluation (`{"sentence1", "sentence2", "score"}`), from JSONL or a
// JSON array. A malformed row is fatal, with its line (or array index) named.
import { readTextFile } from "../qwen/files.ts";
import { UserError } from "./cli.ts";

/** One training pair. */
export interface Pair {
  text: string;
  positive: string;
}

/** One graded sentence pair. */
export interface StsRow {
  sentence1: string;
  sentence2: string;
  score: number;
}

/** One parsed row: its value, line (JSONL) or 1-based index (JSON array), and where to say it is. */
export interface JsonItem {
  value: unknown;
  line: number;
  where: string;
}

/**
 * The rows of a JSONL file or a JSON array (any row that is not JSON is fatal, named by
 * line); an empty file is an error.
 */
export async function readJsonItems(path: string): Promise<JsonItem[]> {
  const text = await readTextFile(path, UserError);
  if (text.trimStart().startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(parsed) || parsed.length === 0) throw new UserError(`${path}: no rows`);
    return parsed.map((value, i) => ({ value, line: i + 1, where: `${path}: item ${i + 1}` }));
  }
  const items: JsonItem[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = `${path}: line ${i + 1}`;
    try {
      items.push({ value: JSON.parse(raw), line: i + 1, where });
    } catch {
      throw new UserError(`${where}: not valid JSON`);
    }
  });
  if (items.length === 0) throw new UserError(`${path}: no rows`);
  return items;
}

function field(row: Record<string, unknown>, name: string, where: string): string {
  const v = row[name];
  if (v === undefined) throw new UserError(`${where}: missing field '${name}'`);
  if (typeof v !== "string") throw new UserError(`${where}: field '${name}' must be a string`);
  if (v.trim() === "") throw new UserError(`${where}: field '${name}' is empty`);
  return v;
}

function objectRow(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UserError(`${where}: row is not an object`);
  }
  return value as Record<string, unknown>;
}

/** Read training pairs `{"text", "positive"}`. */
export async function readPairs(path: string): Promise<Pair[]> {
  return (await readJsonItems(path)).map(({ value, where }) => {
    const row = objectRow(value, where);
    return { text: field(row, "text", where), positive: field(row, "positive", where) };
  });
}

/** Read graded pairs `{"sentence1", "sentence2", "score"}`. */
export async function readStsRows(path: string): Promise<StsRow[]> {
  return (await readJsonItems(path)).map(({ value, where }) => {
    const row = objectRow(value, where);
    const score = row.score;
    if (typeof score !== "number" || !Number.isFinite(score)) {
      throw new UserError(`${where}: field 'score' must be a number`);
    }
    return {
      sentence1: field(row, "sentence1", where),
      sentence2: field(row, "sentence2", where),
      score,
    };
  });
}
