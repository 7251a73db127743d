// Running a command script (experiments/*.ts) as a subprocess, as a user would.
const root = new URL("../", import.meta.url).pathname;

/**
 * Exit code and output of `deno run experiments/<script> args…` on the reference backend,
 * with `env` added to the inherited environment.
 */
export async function runScript(
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-write",
      `${root}experiments/${script}`,
      ...args,
    ],
    env: { TENSOR_BACKEND: "reference", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
