// Hugging Face model directories from the hub cache, offline — what transformers does with
// `from_pretrained("Qwen/Qwen2.5-7B-Instruct", local_files_only=True)`: a repo id becomes
// <cache>/models--Qwen--Qwen2.5-7B-Instruct/snapshots/<commit>, the commit read from
// refs/main. Nothing is ever downloaded.

/** A model argument that names no usable directory; the message is one line. */
export class HfCacheError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HfCacheError";
  }
}

/** Reads an environment variable (`Deno.env.get` in the commands, a record in tests). */
export type EnvLookup = (name: string) => string | undefined;

/** Where a model argument was found. */
export interface LocatedModel {
  /** The directory to read config.json, weights and tokenizer files from. */
  dir: string;
  /** The repo id when `dir` came from the cache; null when the argument was a path. */
  repoId: string | null;
  /** Why this snapshot, when no ref named it (the newest one was taken); else null. */
  note: string | null;
}

const commitHash = /^[0-9a-f]{40}$/;

/** Expand a leading `~` as Python's os.path.expanduser does (HF applies it to its variables). */
function expandUser(path: string, env: EnvLookup): string {
  const home = env("HOME");
  return home && (path === "~" || path.startsWith("~/")) ? home + path.slice(1) : path;
}

/**
 * The hub cache directory as huggingface_hub picks it: `$HF_HUB_CACHE`, else
 * `$HUGGINGFACE_HUB_CACHE` (legacy), else `$HF_HOME/hub`, else
 * `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`; null without any of
 * them (no HOME either). Empty values count as unset.
 * @example
 * hubCacheDir((k) => ({ HF_HOME: "/data/hf" })[k]); // "/data/hf/hub"
 */
export function hubCacheDir(env: EnvLookup): string | null {
  const get = (name: string) => env(name) || undefined;
  const hub = get("HF_HUB_CACHE") ?? get("HUGGINGFACE_HUB_CACHE");
  if (hub) return expandUser(hub, env);
  const hfHome = get("HF_HOME");
  if (hfHome) return `${expandUser(hfHome, env)}/hub`;
  const xdg = get("XDG_CACHE_HOME");
  if (xdg) return `${expandUser(xdg, env)}/huggingface/hub`;
  const home = get("HOME");
  return home ? `${home}/.cache/huggingface/hub` : null;
}

/**
 * `name`, `org/name`, optionally `@revision`, split; null when `arg` is not shaped like a
 * Hub model id (HF's rules: letters, digits, `.`, `_`, `-`, at most 96 per part, no `--` or
 * `..`, no leading or trailing `.` or `-`) — so `./x`, `/x`, `~/x` and `a/b/c` are paths.
 */
export function parseRepoId(arg: string): { repoId: string; revision: string | null } | null {
  const at = arg.indexOf("@");
  const repoId = at < 0 ? arg : arg.slice(0, at);
  const revision = at < 0 ? null : arg.slice(at + 1);
  const parts = repoId.split("/");
  const part = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;
  if (parts.length > 2 || !parts.every((p) => part.test(p) && !/--|\.\./.test(p))) return null;
  if (revision !== null && !/^[A-Za-z0-9._-]+$/.test(revision)) return null;
  return { repoId, revision };
}

const isDirectory = (path: string) => Deno.stat(path).then((s) => s.isDirectory, () => false);

/**
 * The directory a `--model` argument names: the argument itself when it exists on disk (a
 * local directory always wins), else, for a repo id, its snapshot in the hub cache — the
 * commit `refs/<revision>` names (revision `main` unless `@revision` is given; a 40-hex
 * revision is the snapshot itself), or, without `refs/main`, the newest snapshot by
 * modification time (with a note saying so). Anything else is returned unchanged for the
 * loader to report. Throws HfCacheError when an id is not in the cache or its ref names a
 * snapshot that is missing.
 * @example
 * const { dir } = await locateModel("Qwen/Qwen2.5-0.5B-Instruct", (k) => Deno.env.get(k));
 */
export async function locateModel(arg: string, env: EnvLookup): Promise<LocatedModel> {
  const asPath = { dir: arg, repoId: null, note: null };
  if (await Deno.stat(arg).then(() => true, () => false)) return asPath;
  const id = parseRepoId(arg);
  if (!id) return asPath;
  const hint = "this tool never downloads: fetch it with huggingface-cli download first";
  const cache = hubCacheDir(env);
  const repo = cache && `${cache}/models--${id.repoId.replaceAll("/", "--")}`;
  if (!repo || !(await isDirectory(`${repo}/snapshots`))) {
    const searched = repo ? `searched ${repo}` : "no cache: HF_HUB_CACHE, HF_HOME and HOME unset";
    throw new HfCacheError(
      `model '${arg}' is neither a directory nor in the Hugging Face cache (${searched}); ${hint}`,
    );
  }
  const revision = id.revision ?? "main";
  const ref = (await Deno.readTextFile(`${repo}/refs/${revision}`).catch(() => null))?.trim();
  if (ref !== undefined && !/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(ref)) {
    throw new HfCacheError(`model '${arg}': ${repo}/refs/${revision} holds no commit ('${ref}')`);
  }
  if (ref !== undefined || commitHash.test(revision)) {
    const commit = ref ?? revision;
    const dir = `${repo}/snapshots/${commit}`;
    if (await isDirectory(dir)) return { dir, repoId: id.repoId, note: null };
    const named = ref !== undefined ? `${repo}/refs/${revision} names commit ${commit}, but ` : "";
    throw new HfCacheError(
      `model '${arg}': ${named}${dir} does not exist (an interrupted download?); ${hint}`,
    );
  }
  if (id.revision !== null) {
    throw new HfCacheError(
      `model '${arg}': no ref '${revision}' in ${repo}/refs and no snapshot of that name; ${hint}`,
    );
  }
  const snapshots: { name: string; mtime: number }[] = [];
  for await (const e of Deno.readDir(`${repo}/snapshots`)) {
    const s = await Deno.stat(`${repo}/snapshots/${e.name}`).catch(() => null);
    if (s?.isDirectory) snapshots.push({ name: e.name, mtime: s.mtime?.getTime() ?? 0 });
  }
  snapshots.sort((a, b) => b.mtime - a.mtime || (a.name < b.name ? -1 : 1));
  const newest = snapshots[0];
  if (!newest) throw new HfCacheError(`model '${arg}': ${repo}/snapshots is empty; ${hint}`);
  return {
    dir: `${repo}/snapshots/${newest.name}`,
    repoId: id.repoId,
    note: `no ${repo}/refs/main; took the newest of ${snapshots.length} snapshot${
      snapshots.length === 1 ? "" : "s"
    } by modification time`,
  };
}
