// Command-line conventions (DESIGN 6): flags declared once produce the parser and `--help`;
// errors are one line `<command>: error: <what>`, exit 1 (2 for usage), no stack trace
// unless DEBUG=1.
import { parseArgs } from "node:util";

/** One flag: its type, default, help text and (for values) a placeholder name. */
export interface FlagSpec {
  type: "string" | "number" | "boolean";
  help: string;
  default?: string | number | boolean;
  /** Placeholder in --help, e.g. DIR. */
  metavar?: string;
  short?: string;
  /** A string flag that may repeat (`--data a --data b`); its value is a list. */
  multiple?: boolean;
}

/** A command: name, one-line summary, flags. */
export interface CommandSpec<F extends Record<string, FlagSpec>> {
  name: string;
  summary: string;
  flags: F;
  /** Extra text after the flag list (examples, output format). */
  epilog?: string;
  /** Positional arguments, for a command that takes them (e.g. `OUT SHARD.json…`). */
  positionals?: { metavar: string; min: number };
}

type FlagValue<S extends FlagSpec> = S extends { multiple: true } ? string[]
  : S["type"] extends "number" ? number
  : S["type"] extends "boolean" ? boolean
  : string;

/** Parsed flags: present (or defaulted) values typed by their spec, others undefined. */
export type Flags<F extends Record<string, FlagSpec>> = {
  [K in keyof F]: F[K] extends { default: unknown } ? FlagValue<F[K]> : FlagValue<F[K]> | undefined;
};

/** A user mistake: printed as one line, exit code 1 (or 2 for usage). */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "UserError";
  }
}

/** The `--help` text of a command. */
export function helpText<F extends Record<string, FlagSpec>>(spec: CommandSpec<F>): string {
  const rows = Object.entries(spec.flags).map(([name, f]) => {
    const left = `--${name}${
      f.type === "boolean" ? "" : ` ${f.metavar ?? (f.type === "number" ? "N" : "VALUE")}`
    }${f.multiple ? " …" : ""}`;
    const def = f.default !== undefined && f.type !== "boolean" ? ` (default: ${f.default})` : "";
    return [left, f.help + def] as const;
  });
  rows.push(["--help", "show this help"]);
  const width = Math.max(...rows.map(([l]) => l.length));
  const lines = rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`);
  const usage = spec.positionals ? ` ${spec.positionals.metavar}` : "";
  return `deno task ${spec.name} [flags]${usage}\n\n${spec.summary}\n\nFlags:\n${lines.join("\n")}${
    spec.epilog ? `\n\n${spec.epilog}` : ""
  }\n`;
}

/** Parse `args` against the spec; prints help and exits on --help, throws UserError (exit 2) on misuse. */
export function parseFlags<F extends Record<string, FlagSpec>>(
  spec: CommandSpec<F>,
  args: readonly string[],
): Flags<F> {
  return parseCommandLine(spec, args).flags;
}

/** `parseFlags` for a command with positional arguments: the flags and the positionals. */
export function parseCommandLine<F extends Record<string, FlagSpec>>(
  spec: CommandSpec<F>,
  args: readonly string[],
): { flags: Flags<F>; positionals: string[] } {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {
    help: { type: "boolean" },
  };
  for (const [name, f] of Object.entries(spec.flags)) {
    options[name] = {
      type: f.type === "boolean" ? "boolean" : "string",
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  }
  let values: Record<string, string | string[] | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options,
      allowPositionals: spec.positionals !== undefined,
      strict: true,
    }) as {
      values: Record<string, string | string[] | boolean | undefined>;
      positionals: string[];
    });
  } catch (e) {
    throw new UserError(`${(e as Error).message.split("\n")[0]} (see --help)`, 2);
  }
  if (values.help) {
    console.log(helpText(spec));
    Deno.exit(0);
  }
  if (spec.positionals && positionals.length < spec.positionals.min) {
    throw new UserError(`expects ${spec.positionals.metavar} (see --help)`, 2);
  }
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(spec.flags)) {
    const raw = values[name];
    if (raw === undefined) {
      out[name] = f.multiple && typeof f.default === "string" ? f.default.split(",") : f.default;
      continue;
    }
    if (f.type === "number") {
      const n = Number(raw);
      if (raw === "" || !Number.isFinite(n)) {
        throw new UserError(`--${name} expects a number, got '${raw}'`, 2);
      }
      out[name] = n;
    } else out[name] = raw;
  }
  return { flags: out as Flags<F>, positionals };
}

/** Run a command's main: user errors become one line and an exit code; DEBUG=1 shows stacks. */
export async function runCommand(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const debug = Deno.env.get("DEBUG") === "1";
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    console.error(`${name}: error: ${message}`);
    if (debug && e instanceof Error) console.error(e.stack);
    Deno.exit(e instanceof UserError ? e.exitCode : 1);
  }
}

/** Write a file atomically (temp file + rename), so a crash never leaves half an output. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** A non-negative integer flag value, or a usage error naming the flag. */
export function intFlag(name: string, value: number, min = 0): number {
  if (!Number.isInteger(value) || value < min) {
    throw new UserError(`--${name} must be an integer ≥ ${min}, got ${value}`, 2);
  }
  return value;
}

/**
 * Ctrl-C asks a training command to stop after its current step and write a checkpoint;
 * a second Ctrl-C aborts at once. Call `release` when the loop is over.
 */
export function stopOnInterrupt(
  command: string,
): { requested: () => boolean; release: () => void } {
  let requested = false;
  const onSigint = () => {
    if (requested) Deno.exit(130);
    requested = true;
    console.error(
      `\n${command}: stopping after this step (checkpoint follows; Ctrl-C again to abort)`,
    );
  };
  Deno.addSignalListener("SIGINT", onSigint);
  return {
    requested: () => requested,
    release: () => Deno.removeSignalListener("SIGINT", onSigint),
  };
}
