// Resolving Hugging Face repo ids in a fake hub cache: refs, snapshots by modification time,
// blobs behind symlinks, revisions, missing pieces, local directories winning, and where the
// cache is (HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > HF_HOME/hub > XDG_CACHE_HOME > HOME).
import { assert, assertDeepEqual, assertEquals, assertRejects } from "../assert.ts";
import { hubCacheDir, locateModel, parseRepoId } from "../../qwen/hf_cache.ts";
import { addSnapshot, repoDir, setRef } from "../fake_hub.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

const hashA = "a".repeat(40), hashB = "b".repeat(40), hashC = "c".repeat(40);

/**
 * `id` in `cache` with snapshots A (oldest), B (newest) and C (between), each holding a
 * config.json (a symlink into ../../blobs) that names its snapshot, and refs/main naming
 * `main` when given. Returns the repo folder.
 */
async function fakeRepo(cache: string, id: string, main: string | null): Promise<string> {
  const times = { [hashA]: 1_000_000, [hashB]: 3_000_000, [hashC]: 2_000_000 };
  for (const [hash, seconds] of Object.entries(times)) {
    await addSnapshot(
      cache,
      id,
      hash,
      { "config.json": JSON.stringify({ snapshot: hash }) },
      seconds,
    );
  }
  if (main !== null) await setRef(cache, id, "main", main);
  return repoDir(cache, id);
}

const snapshotOf = async (dir: string) =>
  JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).snapshot;

Deno.test("hubCacheDir() takes HF_HUB_CACHE, then HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME, HOME", () => {
  const all = {
    HF_HUB_CACHE: "/a",
    HUGGINGFACE_HUB_CACHE: "/b",
    HF_HOME: "/c",
    XDG_CACHE_HOME: "/d",
    HOME: "/e",
  };
  const cases: [Record<string, string>, string | null][] = [
    [all, "/a"],
    [{ ...all, HF_HUB_CACHE: "" }, "/b"],
    [{ HF_HOME: "/c", XDG_CACHE_HOME: "/d", HOME: "/e" }, "/c/hub"],
    [{ XDG_CACHE_HOME: "/d", HOME: "/e" }, "/d/huggingface/hub"],
    [{ HOME: "/e" }, "/e/.cache/huggingface/hub"],
    [{ HF_HOME: "~/hf", HOME: "/e" }, "/e/hf/hub"],
    [{ HF_HUB_CACHE: "~", HOME: "/e" }, "/e"],
    [{}, null],
  ];
  for (const [env, want] of cases) assertEquals(hubCacheDir(envOf(env)), want, JSON.stringify(env));
});

Deno.test("parseRepoId() accepts HF's model ids and leaves paths alone", () => {
  assertDeepEqual(parseRepoId("Qwen/Qwen2.5-7B-Instruct"), {
    repoId: "Qwen/Qwen2.5-7B-Instruct",
    revision: null,
  });
  assertDeepEqual(parseRepoId("gpt2"), { repoId: "gpt2", revision: null });
  assertDeepEqual(parseRepoId(`org/my_model.v1@${hashA}`), {
    repoId: "org/my_model.v1",
    revision: hashA,
  });
  assertDeepEqual(parseRepoId("org/name@v1.0"), { repoId: "org/name", revision: "v1.0" });
  for (
    const path of [
      "/abs/dir",
      "./org/name",
      "../name",
      "~/models/x",
      "a/b/c",
      "org/",
      "org//name",
      "org/-name",
      "org/name.",
      "org/na--me",
      "org/na..me",
      "org/na me",
      "org/name@",
      "x".repeat(97),
      ".",
    ]
  ) {
    assertEquals(parseRepoId(path), null, path);
  }
});

Deno.test("locateModel() follows refs/main, not the newest snapshot, and reads through blob symlinks", async () => {
  const cache = await Deno.makeTempDir();
  const repo = await fakeRepo(cache, "org/name", `${hashC}\n`);
  const got = await locateModel("org/name", envOf({ HF_HUB_CACHE: cache }));
  assertDeepEqual(got, { dir: `${repo}/snapshots/${hashC}`, repoId: "org/name", note: null });
  assertEquals(await snapshotOf(got.dir), hashC);
  assert((await Deno.lstat(`${got.dir}/config.json`)).isSymlink);
  await Deno.remove(cache, { recursive: true });
});

Deno.test("locateModel() without refs/main takes the newest snapshot by modification time and says so", async () => {
  const cache = await Deno.makeTempDir();
  const repo = await fakeRepo(cache, "org/name", null);
  const got = await locateModel("org/name", envOf({ HF_HUB_CACHE: cache }));
  assertEquals(got.dir, `${repo}/snapshots/${hashB}`);
  assertEquals(await snapshotOf(got.dir), hashB);
  assertEquals(
    got.note,
    `no ${repo}/refs/main; took the newest of 3 snapshots by modification time`,
  );
  await Deno.utime(`${repo}/snapshots/${hashA}`, 4_000_000, 4_000_000);
  assertEquals(
    (await locateModel("org/name", envOf({ HF_HUB_CACHE: cache }))).dir,
    `${repo}/snapshots/${hashA}`,
  );
  await Deno.remove(cache, { recursive: true });
});

Deno.test("locateModel() with @revision takes a commit's snapshot or the ref of that name", async () => {
  const cache = await Deno.makeTempDir();
  const repo = await fakeRepo(cache, "org/name", hashC);
  await Deno.writeTextFile(`${repo}/refs/dev`, hashA);
  const env = envOf({ HF_HUB_CACHE: cache });
  assertEquals((await locateModel(`org/name@${hashB}`, env)).dir, `${repo}/snapshots/${hashB}`);
  assertEquals((await locateModel("org/name@dev", env)).dir, `${repo}/snapshots/${hashA}`);
  assertEquals((await locateModel("org/name@main", env)).dir, `${repo}/snapshots/${hashC}`);
  await assertRejects(
    locateModel("org/name@nosuch", env),
    { message: new RegExp(`^model 'org/name@nosuch': no ref 'nosuch' in ${repo}/refs`) },
  );
  await assertRejects(
    locateModel(`org/name@${"d".repeat(40)}`, env),
    { message: new RegExp(`${repo}/snapshots/${"d".repeat(40)} does not exist`) },
  );
  await Deno.remove(cache, { recursive: true });
});

Deno.test("locateModel() rejects a refs/main naming a missing snapshot, an empty refs/main and no snapshots", async () => {
  const cache = await Deno.makeTempDir();
  const missing = "e".repeat(40);
  const repo = await fakeRepo(cache, "org/name", missing);
  const env = envOf({ HF_HUB_CACHE: cache });
  await assertRejects(locateModel("org/name", env), {
    name: "HfCacheError",
    message: `model 'org/name': ${repo}/refs/main names commit ${missing}, but ` +
      `${repo}/snapshots/${missing} does not exist (an interrupted download?); ` +
      "this tool never downloads: fetch it with huggingface-cli download first",
  });
  await Deno.writeTextFile(`${repo}/refs/main`, "\n");
  await assertRejects(locateModel("org/name", env), { message: /refs\/main holds no commit/ });
  await Deno.mkdir(`${cache}/models--org--empty/snapshots`, { recursive: true });
  await assertRejects(locateModel("org/empty", env), {
    message: new RegExp(`^model 'org/empty': ${cache}/models--org--empty/snapshots is empty;`),
  });
  await Deno.remove(cache, { recursive: true });
});

Deno.test("locateModel() names the id and the searched path when the model is not cached", async () => {
  const home = await Deno.makeTempDir();
  await assertRejects(locateModel("Qwen/Qwen2.5-7B-Instruct", envOf({ HOME: home })), {
    name: "HfCacheError",
    message: "model 'Qwen/Qwen2.5-7B-Instruct' is neither a directory nor in the Hugging Face " +
      `cache (searched ${home}/.cache/huggingface/hub/models--Qwen--Qwen2.5-7B-Instruct); ` +
      "this tool never downloads: fetch it with huggingface-cli download first",
  });
  await assertRejects(locateModel("gpt2", envOf({})), { message: /\(no cache: .*unset\)/ });
  await Deno.remove(home, { recursive: true });
});

Deno.test("locateModel() picks the cache of the first variable set: HF_HUB_CACHE > HF_HOME/hub > HOME", async () => {
  const tmp = await Deno.makeTempDir();
  const hub = await fakeRepo(`${tmp}/hub-cache`, "org/name", hashA);
  const hfHome = await fakeRepo(`${tmp}/hf-home/hub`, "org/name", hashB);
  const home = await fakeRepo(`${tmp}/home/.cache/huggingface/hub`, "org/name", hashC);
  const vars = { HF_HUB_CACHE: `${tmp}/hub-cache`, HF_HOME: `${tmp}/hf-home`, HOME: `${tmp}/home` };
  const dir = async (env: Record<string, string>) =>
    (await locateModel("org/name", envOf(env))).dir;
  assertEquals(await dir(vars), `${hub}/snapshots/${hashA}`);
  assertEquals(await dir({ ...vars, HF_HUB_CACHE: "" }), `${hfHome}/snapshots/${hashB}`);
  assertEquals(await dir({ HOME: vars.HOME }), `${home}/snapshots/${hashC}`);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("locateModel() returns a path that exists, even one shaped like a cached id, and non-ids as given", async () => {
  const tmp = await Deno.makeTempDir();
  await fakeRepo(`${tmp}/cache`, "org/name", hashA);
  await Deno.mkdir(`${tmp}/cwd/org/name`, { recursive: true });
  const env = envOf({ HF_HUB_CACHE: `${tmp}/cache` });
  const cwd = Deno.cwd();
  Deno.chdir(`${tmp}/cwd`);
  try {
    assertDeepEqual(await locateModel("org/name", env), {
      dir: "org/name",
      repoId: null,
      note: null,
    });
  } finally {
    Deno.chdir(cwd);
  }
  assert((await locateModel("org/name", env)).repoId === "org/name");
  for (const path of [`${tmp}/missing`, "./org/name", "a/b/c"]) {
    assertDeepEqual(await locateModel(path, env), { dir: path, repoId: null, note: null });
  }
  await Deno.remove(tmp, { recursive: true });
});
