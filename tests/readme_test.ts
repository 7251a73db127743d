// The README's TypeScript example runs as written (imports pointed at this checkout).
import { assert, assertEquals } from "./assert.ts";

const root = new URL("../", import.meta.url).pathname;

Deno.test("the README's engine example runs", async () => {
  const readme = await Deno.readTextFile(`${root}README.md`);
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert(code, "README.md has a ```ts block");
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code.replaceAll('"./mod.ts"', `"${root}mod.ts"`));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", file],
    env: { TENSOR_BACKEND: "reference" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  assert(stdout.includes("[ 1, 4, 16, 8 ]"), stdout);
  await Deno.remove(file);
});
