// data/make_mc.ts: the row builders on hand-made items, and the committed data/mc files: valid
// rows in the documented counts, built from held-out items only (nothing in the chat training set
// or the pairs training data). Nothing here needs diatheke or bsdgames.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { brownDocuments, documentText } from "../../experiments/corpus/brown.ts";
import {
  bibleModernRows,
  brownNextRows,
  type Mc2Row,
  type McRow,
  mcRow,
  mcSizes,
  quizMc2Rows,
  quizRows,
  similarLength,
  wordnetDefineRows,
} from "../../data/make_mc.ts";
import { type ChatRow, quizAccepts, quizFacts } from "../../data/make_chat.ts";
import { mulberry32, parseSynsetLine, type Synset } from "../../data/make_pairs.ts";

const dataDir = new URL("../../data/", import.meta.url).pathname;

async function readJsonl<T>(path: string): Promise<T[]> {
  const text = await Deno.readTextFile(path);
  return text.trimEnd().split("\n").map((line) => JSON.parse(line) as T);
}

Deno.test("make_mc: mcRow() puts the truth at the label, each position about as often", () => {
  const random = mulberry32(3);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 4000; i++) {
    const row = mcRow("Q:", " yes", [" a", " b", " c"], random);
    assertEquals(row.choices[row.label], " yes");
    assertDeepEqual([...row.choices].sort(), [" a", " b", " c", " yes"]);
    counts[row.label]!++;
  }
  assert(counts.every((c) => c > 900 && c < 1100), `${counts}`);
});

Deno.test("make_mc: similarLength() draws distinct texts of near length, never the target", () => {
  const pool = ["one", "One", "two words", "three words here", "a b c d e f g", "two more", "x y"];
  const got = similarLength(pool, "two words", 3, mulberry32(1), 3);
  assertEquals(got.length, 3);
  assertEquals(new Set(got.map((t) => t.toLowerCase())).size, 3);
  assert(!got.includes("two words"));
  assert(got.every((t) => t.split(" ").length <= 3), `${got}`);
});

const quizIndex = "/q/europe:Europe{an}:cap{ital}\n/q/murders:victim:killer";
const quizFiles = new Map([
  ["europe", "France:Paris\nItaly:Rome\nSpain:Madrid\nPortugal:Lisbon\nAustria:Vienna"],
  [
    "murders",
    "Cock Robin:{the }sparrow\nsleep|Duncan:Macbeth\n{the }cat:curiosity|care\nAbel:Cain",
  ],
]);
const quizTemplates = [
  { subject: "europe", from: "European", to: "capital", ask: "Capital of {q}?", tell: "{a}." },
  { subject: "murders", from: "victim", to: "killer", ask: "Who killed {q}?", tell: "{a}." },
];

Deno.test("make_mc: quizRows() draws wrong answers from the same kind, none accepted", () => {
  const facts = quizFacts(quizIndex, quizFiles, quizTemplates);
  const rows = quizRows(facts, mulberry32(2));
  assertEquals(rows.length, 9);
  for (const row of rows) {
    const fact = facts.find((f) =>
      row.context === `Question: ${f.template.ask.replace("{q}", f.question)}\nAnswer:`
    )!;
    assertEquals(row.choices[row.label], ` ${fact.answer}`);
    const kind = facts.filter((f) => f.template === fact.template).map((f) => ` ${f.answer}`);
    assert(row.choices.every((c) => kind.includes(c)));
    const wrong = row.choices.filter((_, i) => i !== row.label);
    assert(wrong.every((c) => !quizAccepts(fact.accepts, c)));
  }
});

Deno.test("make_mc: quizMc2Rows() lists every true answer first, then wrong ones", () => {
  const facts = quizFacts(quizIndex, quizFiles, quizTemplates);
  const rows = quizMc2Rows(facts, mulberry32(4));
  const cat = rows.find((r) => r.context.includes("the cat?"))!;
  assertDeepEqual(cat.choices.slice(0, 2), [" curiosity", " care"]);
  assertDeepEqual(cat.labels, [1, 1, 0, 0, 0]);
  // Facts with a single answer (the capitals, Abel) make no MC2 row.
  assertDeepEqual(rows.map((r) => r.context).sort(), [
    "Question: Who killed Cock Robin?\nAnswer:",
    "Question: Who killed the cat?\nAnswer:",
  ]);
});

Deno.test("make_mc: wordnetDefineRows() keeps every sense of the true word out of the distractors", () => {
  const synset = (line: string) => parseSynsetLine(line)!;
  const nouns: Synset[] = [
    synset("00000001 05 n 02 dog 0 hound 0 000 | a domestic canine"),
    synset("00000002 05 n 01 cat 0 000 | a small feline"),
    synset("00000003 05 n 02 hound 0 cad 0 000 | a mean man"),
    synset("00000004 05 n 01 cow 0 000 | a bovine"),
    synset("00000005 05 n 01 horse 0 000 | an equine"),
  ];
  const pool = ["dog", "hound", "cat", "cad", "cow", "horse"];
  const rows = wordnetDefineRows(nouns, pool, mulberry32(5));
  const dog = rows.find((r) => r.choices[r.label] === " dog")!;
  assertEquals(dog.context, "Which word means: a domestic canine?\nAnswer:");
  assert(!dog.choices.includes(" hound") && !dog.choices.includes(" cad"), `${dog.choices}`);
});

Deno.test("make_mc: bibleModernRows() and brownNextRows() take distractors from elsewhere", () => {
  const pairs = Array.from({ length: 40 }, (_, i) => ({
    book: i % 2 ? "Ruth" : "Jonah",
    chapter: 1 + (i % 4),
    verse: i,
    kjv: `Thus saith verse ${i}.`,
    web: `This says verse ${i}${" again".repeat(i % 5)}.`,
  }));
  const train = [{ ...pairs[0]!, kjv: "And Thus saith verse 39. Amen.", web: "Amen." }];
  const rows = bibleModernRows(pairs, train, mulberry32(6));
  assert(rows.length > 20 && rows.every((r) => !r.context.includes("verse 39.")));
  for (const row of rows) {
    const p = pairs.find((q) => row.context.includes(q.kjv))!;
    assertEquals(row.choices[row.label], ` ${p.web}`);
    const others = row.choices.filter((_, i) => i !== row.label).map((c) => c.slice(1));
    assert(others.every((w) => pairs.some((q) => q.web === w && q.chapter !== p.chapter)));
  }
  const doc = (file: string) => ({
    file,
    category: "news",
    paragraphs: [Array.from({ length: 30 }, (_, i) => `In ${file} the sentence ${i} is here.`)],
  });
  const next = brownNextRows(
    [doc("ca01"), doc("cb02")],
    "In ca01 the sentence 7 is here.",
    mulberry32(8),
  );
  assert(next.length > 5 && next.every((r) => !r.context.includes("sentence 7 ")));
  for (const row of next) {
    const file = row.context.slice(3, 7);
    const wrong = row.choices.filter((_, i) => i !== row.label);
    assert(row.choices[row.label]!.startsWith(` In ${file} `));
    assert(wrong.every((c) => !c.includes(file)), `${row.choices}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The committed files.

Deno.test("make_mc: committed task files have valid rows in the documented counts", async () => {
  for (const [name, size] of Object.entries(mcSizes)) {
    const rows = await readJsonl<McRow & Mc2Row>(`${dataDir}mc/${name}.jsonl`);
    assertEquals(rows.length, size, name);
    assertEquals(new Set(rows.map((r) => r.context)).size, size, `${name}: repeated context`);
    for (const [i, row] of rows.entries()) {
      const where = `${name} row ${i}`;
      assert(typeof row.context === "string" && row.context.trim() !== "", where);
      assert(row.choices.length >= 2, where);
      assert(row.choices.every((c) => c.startsWith(" ") && c.trim() !== ""), where);
      assertEquals(new Set(row.choices.map((c) => c.toLowerCase())).size, row.choices.length);
      if (name === "quiz-mc2") {
        assertEquals(row.labels.length, row.choices.length, where);
        assert(row.labels.includes(1) && row.labels.includes(0), where);
        // TruthfulQA's order: the true answers first.
        assertEquals(row.labels.join(""), [...row.labels].sort().reverse().join(""), where);
      } else {
        assertEquals(row.choices.length, 4, where);
        assert(Number.isInteger(row.label) && row.label >= 0 && row.label < 4, where);
      }
    }
  }
});

Deno.test("make_mc: committed task files share nothing with the chat and pairs training data", async () => {
  const chat = await readJsonl<ChatRow>(`${dataDir}chat/train.jsonl`);
  const pairs = await readJsonl<{ text: string; positive: string }>(`${dataDir}pairs/train.jsonl`);
  const chatText = chat.flatMap((r) => r.messages.map((m) => m.content)).join("\n");
  const pairTexts = new Set(pairs.flatMap((p) => [p.text.toLowerCase(), p.positive.toLowerCase()]));
  const inTrain = (text: string) => chatText.includes(text) || pairTexts.has(text.toLowerCase());
  const mc = async (name: string) => await readJsonl<McRow>(`${dataDir}mc/${name}.jsonl`);

  const define = await mc("wordnet-define");
  const definedInChat = new Set(
    chat.filter((r) => r.task === "define").map((r) =>
      /"([^"]+)"/.exec(r.messages.at(-2)!.content)![1]
    ),
  );
  for (const row of define) {
    const word = row.choices[row.label]!.trim();
    assert(!pairTexts.has(word) && !definedInChat.has(word), `wordnet-define: ${word}`);
    const definition = /^Which word means: (.*)\?\n/.exec(row.context)![1]!;
    assert(!pairTexts.has(definition) && !chatText.includes(`means ${definition}.`), definition);
  }
  for (const row of await mc("bible-modern")) {
    assert(!inTrain(/^King James Version: (.*)\n/.exec(row.context)![1]!), row.context);
    for (const c of row.choices) assert(!inTrain(c.trim()), `bible-modern: ${c}`);
  }
  for (const name of ["quiz", "quiz-mc2"]) {
    for (const row of await mc(name)) {
      const question = /^Question: (.*)\nAnswer:$/.exec(row.context)![1]!;
      assert(
        !chat.some((r) => r.task === "quiz" && r.messages.at(-2)!.content === question),
        question,
      );
    }
  }
  const [train, heldout] = await Promise.all(
    (["train", "heldout"] as const).map(async (s) =>
      (await brownDocuments(s)).map(documentText).join("\n")
    ),
  );
  for (const row of await mc("brown-next")) {
    for (const text of [row.context, ...row.choices.map((c) => c.trim())]) {
      assert(heldout!.includes(text) && !train!.includes(text) && !inTrain(text), text);
    }
  }
});
