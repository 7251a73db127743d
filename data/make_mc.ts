// `deno task make-mc`: small generated multiple-choice task files (data/mc/*.jsonl), rows
// `{"context", "choices", "label"}` (or `"labels"`, TruthfulQA-MC2 style) scored as
// lm-evaluation-harness scores them: the log-likelihood of each choice as a continuation of the
// context, so a choice starts with a space. Every row comes from held-out items only: Bible
// chapters and WordNet synsets held out by data/make_pairs.ts, held-out quiz records and Brown
// files (data/make_chat.ts, experiments/corpus/brown.ts). These are stand-ins, not MMLU,
// Winogrande or TruthfulQA: see data/mc/README.md.
import { type BrownDocument, brownDocuments, documentText } from "../experiments/corpus/brown.ts";
import { intFlag, parseFlags, runCommand } from "../experiments/cli.ts";
import {
  type BiblePair,
  bibleSplit,
  definitionOf,
  heldOutNouns,
  isHeldOut,
  shuffled,
  type Synset,
} from "./make_pairs.ts";
import {
  installHint,
  isQuizHeldOut,
  maxChatVerseWords,
  passages,
  quizAccepts,
  type QuizFact,
  quizQuestion,
  readBible,
  readQuiz,
  readWordNet,
  sample,
  stream,
  wordCount,
  writeJsonl,
} from "./make_chat.ts";

/** A multiple-choice row: the true choice is `choices[label]`. */
export interface McRow {
  context: string;
  choices: string[];
  label: number;
}

/** A TruthfulQA-MC2-style row: `labels[i]` is 1 for each true choice (listed first), 0 else. */
export interface Mc2Row {
  context: string;
  choices: string[];
  labels: number[];
}

/** The task files and their rows. */
export const mcSizes = {
  "wordnet-define": 250,
  "bible-modern": 250,
  quiz: 250,
  "brown-next": 250,
  "quiz-mc2": 200,
} as const;

/** A row with the truth at a uniformly drawn position among the distractors. */
export function mcRow(
  context: string,
  truth: string,
  distractors: readonly string[],
  random: () => number,
): McRow {
  const choices = shuffled(distractors, random);
  const label = Math.floor(random() * (choices.length + 1));
  choices.splice(label, 0, truth);
  return { context, choices, label };
}

/**
 * `count` distinct texts of `pool` near `target` in word count (drawn among the `spread`
 * nearest), none equal to `target` ignoring case; fewer when the pool runs out.
 */
export function similarLength(
  pool: readonly string[],
  target: string,
  count: number,
  random: () => number,
  spread = 20,
): string[] {
  const n = wordCount(target);
  const unique = new Map(pool.map((t) => [t.toLowerCase(), t]));
  unique.delete(target.toLowerCase());
  const nearest = [...unique.values()].map((t) =>
    [Math.abs(wordCount(t) - n) + random(), t] as const
  )
    .sort((a, b) => a[0] - b[0]).slice(0, spread).map(([, t]) => t);
  return shuffled(nearest, random).slice(0, count);
}

/** Word-for-definition: a held-out noun synset's definition, its word and 3 other held-out nouns
 * (none a word of any sense of the true one). */
export function wordnetDefineRows(
  nouns: readonly Synset[],
  pool: readonly string[],
  random: () => number,
): McRow[] {
  const inPool = new Set(pool);
  const senses = new Map<string, Synset[]>();
  for (const s of nouns) {
    for (const w of s.words) senses.set(w.toLowerCase(), [...senses.get(w.toLowerCase()) ?? [], s]);
  }
  const used = new Set<string>();
  return shuffled(nouns, random).flatMap((s) => {
    const definition = definitionOf(s.gloss);
    const word = s.words.find((w) => inPool.has(w) && !used.has(w));
    if (!word || definition === "" || definition.toLowerCase().includes(word)) return [];
    used.add(word);
    const related = new Set(senses.get(word)!.flatMap((t) => t.words.map((w) => w.toLowerCase())));
    const distractors = shuffled(pool, random).filter((d) => !related.has(d)).slice(0, 3);
    if (distractors.length < 3) return [];
    const context = `Which word means: ${definition}?\nAnswer:`;
    return [mcRow(context, ` ${word}`, distractors.map((d) => ` ${d}`), random)];
  });
}

/**
 * Modern rendering: a held-out KJV verse (≤ `maxChatVerseWords` words each side), its WEB text
 * and 3 WEB verses of similar length from other held-out chapters. Held-out verses that a train
 * verse contains (`Yahweh’s word came to me, saying,` in `Moreover Yahweh’s word came…`) are
 * left out.
 */
export function bibleModernRows(
  heldOut: readonly BiblePair[],
  train: readonly BiblePair[],
  random: () => number,
): McRow[] {
  const trainText = train.flatMap((p) => [p.kjv, p.web]).join("\n");
  const chapter = (p: BiblePair) => `${p.book} ${p.chapter}`;
  const usable = heldOut.filter((p) =>
    Math.max(wordCount(p.kjv), wordCount(p.web)) <= maxChatVerseWords &&
    !trainText.includes(p.kjv) && !trainText.includes(p.web)
  );
  return shuffled(usable, random).flatMap((p) => {
    const others = usable.filter((o) => chapter(o) !== chapter(p)).map((o) => o.web);
    const distractors = similarLength(others, p.web, 3, random);
    if (p.kjv === p.web || distractors.length < 3) return [];
    const context = `King James Version: ${p.kjv}\nModern English:`;
    return [mcRow(context, ` ${p.web}`, distractors.map((d) => ` ${d}`), random)];
  });
}

/** Answers of other facts of the same kind that the fact's pattern does not accept. */
function wrongAnswers(fact: QuizFact, facts: readonly QuizFact[], random: () => number): string[] {
  const seen = new Set<string>();
  return shuffled(facts, random).flatMap((o) => {
    const key = o.answer.toLowerCase();
    if (o.template !== fact.template || seen.has(key) || quizAccepts(fact.accepts, o.answer)) {
      return [];
    }
    seen.add(key);
    return [o.answer];
  });
}

/** Quiz facts: the question, its answer and 3 answers of held-out questions of the same kind. */
export function quizRows(heldOut: readonly QuizFact[], random: () => number): McRow[] {
  return shuffled(heldOut, random).flatMap((f) => {
    const wrong = wrongAnswers(f, heldOut, random).slice(0, 3);
    if (wrong.length < 3) return [];
    const context = `Question: ${quizQuestion(f)}\nAnswer:`;
    return [mcRow(context, ` ${f.answer}`, wrong.map((w) => ` ${w}`), random)];
  });
}

/** MC2: every true answer a quiz fact names (at least two), then 3 wrong ones of its kind. */
export function quizMc2Rows(heldOut: readonly QuizFact[], random: () => number): Mc2Row[] {
  return shuffled(heldOut, random).flatMap((f) => {
    const wrong = wrongAnswers(f, heldOut, random).slice(0, 3);
    if (f.answers.length < 2 || wrong.length < 2) return [];
    return [{
      context: `Question: ${quizQuestion(f)}\nAnswer:`,
      choices: [...f.answers, ...wrong].map((a) => ` ${a}`),
      labels: [...f.answers.map(() => 1), ...wrong.map(() => 0)],
    }];
  });
}

/** Next sentence: 2–3 sentences of a held-out Brown paragraph, the sentence after them and 3
 * sentences of similar length from other held-out files; passages with a sentence that the
 * train text also has (`She shook her head.`) are left out. */
export function brownNextRows(
  heldOut: readonly BrownDocument[],
  trainText: string,
  random: () => number,
): McRow[] {
  const windows = heldOut.flatMap((d) =>
    d.paragraphs.flatMap((p) => passages(p, random)).map((w) => ({ file: d.file, ...w }))
  ).filter((w) => [...w.context, ...w.next].every((s) => !trainText.includes(s)));
  return shuffled(windows, random).flatMap((w) => {
    const truth = w.next[0]!;
    const others = windows.filter((o) => o.file !== w.file).flatMap((o) => [
      ...o.context,
      ...o.next,
    ]);
    const distractors = similarLength(others, truth, 3, random);
    if (distractors.length < 3) return [];
    return [mcRow(w.context.join(" "), ` ${truth}`, distractors.map((d) => ` ${d}`), random)];
  });
}

const spec = {
  name: "make-mc",
  summary:
    "Build the generated multiple-choice stand-ins data/mc/*.jsonl from held-out WordNet synsets, Bible chapters, quiz records and Brown files.",
  flags: {
    out: { type: "string", metavar: "DIR", default: "data/mc", help: "output folder" },
    scale: { type: "number", default: 1, help: "multiply every file's row count" },
    seed: { type: "number", default: 2025, help: "seed of every random draw" },
  },
  epilog: `Needs (Debian/Ubuntu): ${installHint}
Rows per file: ${Object.entries(mcSizes).map(([k, v]) => `${k} ${v}`).join(", ")}.`,
} as const;

if (import.meta.main) {
  await runCommand("make-mc", async () => {
    const flags = parseFlags(spec, Deno.args);
    const scale = flags.scale;
    const started = performance.now();
    const [bible, wn, facts, docs, trainDocs] = await Promise.all([
      readBible().then(bibleSplit),
      readWordNet(),
      readQuiz(),
      brownDocuments("heldout"),
      brownDocuments("train"),
    ]);
    const nouns = wn.synsets.filter((s) => s.key.startsWith("n"));
    const nounTagged = new Map(
      [...wn.tagged].filter(([k]) => k.startsWith("n:")).map(([k, v]) => [k.slice(2), v]),
    );
    const heldOutFacts = facts.filter((f) => isQuizHeldOut(f.record));
    const r = (name: string) => stream(flags.seed, `mc ${name}`);
    const candidates: Record<keyof typeof mcSizes, object[]> = {
      "wordnet-define": wordnetDefineRows(
        nouns.filter((s) => isHeldOut(s.key)),
        heldOutNouns(nouns, nounTagged),
        r("wordnet"),
      ),
      "bible-modern": bibleModernRows(bible.heldOut, bible.train, r("bible")),
      quiz: quizRows(heldOutFacts, r("quiz")),
      "brown-next": brownNextRows(docs, trainDocs.map(documentText).join("\n"), r("brown")),
      "quiz-mc2": quizMc2Rows(heldOutFacts, r("quiz-mc2")),
    };
    await Deno.mkdir(flags.out, { recursive: true });
    for (const [name, rows] of Object.entries(candidates)) {
      const size = intFlag("scale", Math.round(scale * mcSizes[name as keyof typeof mcSizes]), 1);
      const bytes = await writeJsonl(
        `${flags.out}/${name}.jsonl`,
        sample(rows, size, name, r(`sample ${name}`)),
      );
      console.log(
        `${flags.out}/${name}.jsonl: ${size} of ${rows.length} candidates, ${bytes} bytes`,
      );
    }
    console.log(`${((performance.now() - started) / 1000).toFixed(1)} s`);
  });
}
