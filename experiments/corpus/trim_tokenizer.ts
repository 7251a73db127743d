// `deno task trim-tokenizer`: the Qwen2.5 byte-level BPE tokenizer cut down to what the Brown
// Corpus needs, written as an ordinary Hugging Face tokenizer (models/brown-qwen2/).
//
// Kept: the 256 byte tokens (so any text still encodes), every token the full tokenizer
// emits on the corpus, every token of the merge trees that build those (so the trimmed
// tokenizer reproduces the full one's tokens on the corpus: BPE applies, at each step, the
// lowest-ranked merge present; the full run's merge is kept and no kept merge outranks it),
// and all added/special tokens. Merges keep their order; ids are renumbered densely.
import { QwenTokenizer } from "../../qwen/tokenizer.ts";
import { parseFlags, runCommand, UserError } from "../cli.ts";
import { brownCorpus, documentText } from "./brown.ts";

/** An entry of tokenizer.json's `added_tokens`. */
export interface AddedToken {
  id: number;
  content: string;
  [key: string]: unknown;
}

/** The parts of a Hugging Face byte-level BPE tokenizer.json this module reads and rewrites. */
export interface BpeTokenizerJson {
  added_tokens: AddedToken[];
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
  [key: string]: unknown;
}

/** The trimmed tokenizer files. */
export interface TrimmedTokenizer {
  tokenizerJson: BpeTokenizerJson;
  tokenizerConfig: Record<string, unknown>;
}

/** The 256 characters GPT-2's byte-level BPE uses for the bytes 0…255 (`bytes_to_unicode`). */
export function byteLevelAlphabet(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  return Array.from(
    { length: 256 },
    (_, b) => String.fromCodePoint(printable(b) ? b : 256 + shifted++),
  );
}

/** A merge as its two parts, whichever of the two tokenizer.json spellings it uses. */
export function mergeParts(merge: string | [string, string]): [string, string] {
  if (Array.isArray(merge)) return merge;
  const space = merge.indexOf(" ");
  return [merge.slice(0, space), merge.slice(space + 1)];
}

/**
 * `tokens` closed under "a token built by a merge needs both parts": each non-byte token of
 * a byte-level BPE vocabulary is the result of exactly one merge.
 */
export function mergeClosure(
  tokens: Iterable<string>,
  merges: readonly (string | [string, string])[],
): Set<string> {
  const producer = new Map<string, [string, string]>();
  for (const m of merges) {
    const [a, b] = mergeParts(m);
    producer.set(a + b, [a, b]);
  }
  const kept = new Set<string>();
  const stack = [...tokens];
  while (stack.length > 0) {
    const token = stack.pop()!;
    if (kept.has(token)) continue;
    kept.add(token);
    const parts = producer.get(token);
    if (parts) stack.push(...parts);
  }
  return kept;
}

/** The source tokenizer restricted to `keep` (plus bytes and added tokens), ids renumbered. */
export function trimTokenizer(
  source: BpeTokenizerJson,
  sourceConfig: Record<string, unknown>,
  keep: ReadonlySet<string>,
): TrimmedTokenizer {
  const { vocab, merges } = source.model;
  const kept = mergeClosure([...byteLevelAlphabet(), ...keep], merges);
  const addedContents = new Set(source.added_tokens.map((t) => t.content));
  for (const token of kept) {
    if (!(token in vocab) && !addedContents.has(token)) {
      throw new Error(`token ${JSON.stringify(token)} is not in the source vocabulary`);
    }
  }
  const newVocab: Record<string, number> = {};
  const ordered = Object.entries(vocab).filter(([t]) => kept.has(t)).sort((x, y) => x[1] - y[1]);
  ordered.forEach(([t], i) => newVocab[t] = i);
  const newMerges = merges.filter((m) => {
    const [a, b] = mergeParts(m);
    return kept.has(a) && kept.has(b) && kept.has(a + b);
  });
  const newId = new Map<number, number>();
  const addedTokens = source.added_tokens.map((t, i) => {
    newId.set(t.id, ordered.length + i);
    return { ...t, id: ordered.length + i };
  });
  const decoder = (sourceConfig.added_tokens_decoder ?? {}) as Record<string, unknown>;
  const newDecoder: Record<string, unknown> = {};
  for (const [id, entry] of Object.entries(decoder)) {
    const mapped = newId.get(Number(id));
    if (mapped === undefined) {
      throw new Error(`added_tokens_decoder: id ${id} is not an added token`);
    }
    newDecoder[String(mapped)] = entry;
  }
  return {
    tokenizerJson: {
      ...source,
      added_tokens: addedTokens,
      model: { ...source.model, vocab: newVocab, merges: newMerges },
    },
    tokenizerConfig: { ...sourceConfig, added_tokens_decoder: newDecoder },
  };
}

/**
 * tokenizer.json text: 2-space JSON like Hugging Face's, with the vocabulary written in id
 * order (JSON.stringify would move integer-like keys such as "2024" to the front).
 */
export function tokenizerJsonText(tokenizer: BpeTokenizerJson): string {
  const marker = "\u0000vocab\u0000";
  const text = JSON.stringify(
    { ...tokenizer, model: { ...tokenizer.model, vocab: marker } },
    null,
    2,
  );
  const entries = Object.entries(tokenizer.model.vocab).sort((x, y) => x[1] - y[1])
    .map(([t, id]) => `      ${JSON.stringify(t)}: ${id}`);
  return text.replace(JSON.stringify(marker), `{\n${entries.join(",\n")}\n    }`) + "\n";
}

/** tokenizer_config.json text: 2-space JSON. */
export function tokenizerConfigText(config: Record<string, unknown>): string {
  return JSON.stringify(config, null, 2) + "\n";
}

/** Chats whose rendered text is encoded too, so role headers and the default system prompt
 * tokenise as in the full tokenizer. */
const sampleChats = [
  [{ role: "user", content: "Hello." }, { role: "assistant", content: "Hello." }],
  [{ role: "system", content: "Hello." }, { role: "user", content: "Hello." }],
];

/** Every token string the full tokenizer emits on the texts. */
function emittedTokens(tokenizer: QwenTokenizer, idToToken: string[], texts: Iterable<string>) {
  const seen = new Set<number>();
  for (const text of texts) for (const id of tokenizer.encode(text)) seen.add(id);
  return new Set([...seen].map((id) => idToToken[id]!));
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UserError(
      e instanceof Deno.errors.NotFound
        ? `${path}: file not found (the full Qwen2.5 tokenizer is needed; see --source)`
        : `${path}: cannot read (${e})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, path);
}

const root = new URL("../../", import.meta.url).pathname;
const spec = {
  name: "trim-tokenizer",
  summary:
    "Write the Qwen2.5 tokenizer trimmed to the Brown Corpus (bytes, corpus tokens and their merges, special tokens).",
  flags: {
    source: {
      type: "string",
      metavar: "DIR",
      default: `${root}../shared/tokenizer/qwen2.5`,
      help: "the full Qwen2.5 tokenizer (tokenizer.json, tokenizer_config.json)",
    },
    out: {
      type: "string",
      metavar: "DIR",
      default: `${root}models/brown-qwen2`,
      help: "where tokenizer.json and tokenizer_config.json are written",
    },
  },
  epilog: "The output is byte-identical on every run with the same source and corpus.",
} as const;

if (import.meta.main) {
  await runCommand("trim-tokenizer", async () => {
    const flags = parseFlags(spec, Deno.args);
    console.error(`trim-tokenizer: source ${flags.source}, out ${flags.out}`);
    const source = await readJson(`${flags.source}/tokenizer.json`) as unknown as BpeTokenizerJson;
    const sourceConfig = await readJson(`${flags.source}/tokenizer_config.json`);
    if (source.model?.type !== "BPE" || !source.model.vocab || !source.model.merges) {
      throw new UserError(`${flags.source}/tokenizer.json: model is not a byte-level BPE`);
    }
    const full = await QwenTokenizer.load(flags.source);
    const idToToken: string[] = [];
    for (const [t, id] of Object.entries(source.model.vocab)) idToToken[id] = t;
    for (const t of source.added_tokens) idToToken[t.id] = t.content;

    const docs = await brownCorpus();
    const start = performance.now();
    // Documents as training text (paragraph breaks included) and each sentence on its own
    // (its first word without a leading space).
    const texts = function* () {
      for (const [i, doc] of docs.entries()) {
        yield documentText(doc);
        yield* doc.paragraphs.flat();
        if ((i + 1) % 100 === 0) {
          const s = ((performance.now() - start) / 1000).toFixed(0);
          console.error(`encoded ${i + 1}/${docs.length} documents (${s} s)`);
        }
      }
      for (const chat of sampleChats) yield full.applyChatTemplate(chat);
    };
    const used = emittedTokens(full, idToToken, texts());
    const trimmed = trimTokenizer(source, sourceConfig, used);

    await Deno.mkdir(flags.out, { recursive: true });
    const files = {
      "tokenizer.json": tokenizerJsonText(trimmed.tokenizerJson),
      "tokenizer_config.json": tokenizerConfigText(trimmed.tokenizerConfig),
    };
    for (const [name, text] of Object.entries(files)) {
      await writeAtomically(`${flags.out}/${name}`, text);
    }
    const { model, added_tokens: added } = trimmed.tokenizerJson;
    const vocabSize = Object.keys(model.vocab).length;
    console.log(
      `${used.size} tokens emitted on the corpus; vocabulary ${vocabSize} + ${added.length} added = ${
        vocabSize + added.length
      } ids; ${model.merges.length} merges`,
    );
    for (const [name, text] of Object.entries(files)) {
      console.log(`${flags.out}/${name}: ${new TextEncoder().encode(text).length} bytes`);
    }
  });
}
