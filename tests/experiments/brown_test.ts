// The Brown Corpus reader: tagged lines become plain sentences, files split deterministically.
import fc from "fast-check";
import {
  brownCorpus,
  brownCounts,
  brownDocuments,
  brownSentences,
  detokenize,
  documentText,
  fnv1a,
  parseBrownFile,
  splitOf,
} from "../../experiments/corpus/brown.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { assertProperty } from "../fc.ts";

Deno.test("detokenize() glues punctuation and quotes as printed", () => {
  const cases: [string, string | null][] = [
    [
      "The/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ./.",
      'The Fulton County said "no evidence."',
    ],
    [
      "``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ./.",
      '"Only a handful," the jury said.',
    ],
    ["won/vbn by/in Ivan/np Allen/np Jr./np ./.", "won by Ivan Allen Jr."],
    ["in/in early/jj June/np ;/. ;/. or/cc the/at smell/nn", "in early June; or the smell"],
    ["``/`` You/ppss mean/vb this/dt ?/. ''/'' ?/.", '"You mean this?"'],
    ["Henry/np 4/cd ,/, ,/, who/wps died/vbd", "Henry 4, who died"],
    [
      "more/ap '/' pro/jj '/' letters/nns (/( 3/cd )/) :/: 1-1/2/cd",
      "more 'pro' letters (3): 1-1/2",
    ],
    ["said/vbd ,/, '/' You're/ppss+ber my/pp$ man/nn '/' ''/'' ./.", "said, 'You're my man'.\""],
    ["the/at '49/cd team/nn --/-- so-so/jj", "the '49 team -- so-so"],
    ["where/wrb **yc/nn is/bez the/at", null],
    ["   ", null],
  ];
  for (const [line, expected] of cases) assertEquals(detokenize(line), expected, line);
});

Deno.test("detokenize() keeps every letter and digit in order and never spaces before , . ; : ! ? )", async () => {
  const word = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9'.-]{0,6}$/);
  const punct = fc.constantFrom(",", ".", ";", ":", "!", "?", "(", ")", "``", "''", "'", "--");
  const tag = fc.constantFrom("nn", "at", ".", "np-tl", "vbd-hl");
  const line = fc.array(fc.tuple(fc.oneof(word, punct), tag), { minLength: 1, maxLength: 20 });
  const alnum = (s: string) => s.replace(/[^A-Za-z0-9]/g, "");
  await assertProperty(
    fc.property(line, (tokens) => {
      const text = detokenize(tokens.map(([w, t]) => `${w}/${t}`).join(" "));
      assert(text !== null);
      assertEquals(alnum(text), alnum(tokens.map(([w]) => w).join("")));
      assert(!/ [,.;:!?)]/.test(text), text);
      assert(!/\s\s|^\s|\s$/.test(text), text);
    }),
    300,
  );
});

Deno.test("parseBrownFile() makes paragraphs from blank-line blocks", () => {
  const text = "\n\n\tA/at dog/nn ./.\nIt/pps ran/vbd ./.\n\n\n\tThe/at end/nn ./.\n\n";
  const doc = parseBrownFile("cz99", "test", text);
  assertDeepEqual(doc.paragraphs, [["A dog.", "It ran."], ["The end."]]);
  assertEquals(documentText(doc), "A dog. It ran.\n\nThe end.");
});

Deno.test("fnv1a() and splitOf() are fixed functions of the file name", () => {
  assertEquals(fnv1a(""), 0x811c9dc5);
  assertEquals(fnv1a("a"), 0xe40c292c);
  assertEquals(fnv1a("foobar"), 0xbf9cf968);
  assertEquals(splitOf("cc12"), "heldout");
  assertEquals(splitOf("ca01"), "train");
});

Deno.test("brownCorpus() reads 500 files; the splits partition them 474 / 26", async () => {
  const all = await brownCorpus();
  assertEquals(all.length, 500);
  assertEquals(new Set(all.map((d) => d.file)).size, 500);
  const train = await brownDocuments("train");
  const heldout = await brownDocuments("heldout");
  assertEquals(train.length + heldout.length, 500);
  assertDeepEqual(heldout.map((d) => d.file), [
    ..."cc12 cc16 ce07 ce25 cf22 cf44 cg09 cg23 cg38 cg41 cg63 ch15 ch24".split(" "),
    ..."cj13 cj31 cj48 cj53 cj79 cj80 ck09 ck27 cl06 cl20 cn08 cn26 cp11".split(" "),
  ]);
  // The counts documented in data/brown/README.md.
  assertDeepEqual(brownCounts(heldout), {
    files: 26,
    paragraphs: 715,
    sentences: 2828,
    words: 52776,
    characters: 307033,
  });
  assertEquals(brownCounts(all).sentences, 57271);
  assertEquals(all[0]!.category, "news");
  assertEquals(
    all[0]!.paragraphs[0]![0],
    "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary " +
      'election produced "no evidence" that any irregularities took place.',
  );
});

Deno.test("brownSentences() are clean text: no tags, no `` or '', no stray spaces", async () => {
  const sentences = [...await brownSentences("train"), ...await brownSentences("heldout")];
  assertEquals(sentences.length, 57271);
  for (const s of sentences) {
    assert(s.length > 0 && s === s.trim() && !/\s\s|[\t\n]/.test(s), JSON.stringify(s));
    // '' survives only inside a word, as inches: 4' 10''.
    assert(!s.includes("``") && !/(^|\s)''/.test(s) && !s.includes("**"), s);
    assert(!/ [,.;:!?)](\s|$)/.test(s) && !/\( /.test(s), s);
  }
});
