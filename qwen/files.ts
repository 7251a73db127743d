// Reading a model directory's (or data set's) text files with the one error format of the
// commands: `<path>: file not found` / `<path>: cannot read (…)` / `<path>: invalid JSON (…)`.

type ErrorClass = new (message: string) => Error;

/** The text of `path`; a missing or unreadable file throws `error` naming it. */
export async function readTextFile(path: string, error: ErrorClass = Error): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new error(
      e instanceof Deno.errors.NotFound ? `${path}: file not found` : `${path}: cannot read (${e})`,
    );
  }
}

/** `path` parsed as JSON; errors name the file. */
export async function readJsonFile(path: string, error: ErrorClass = Error): Promise<unknown> {
  const text = await readTextFile(path, error);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}
