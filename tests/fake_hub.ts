// A fake Hugging Face hub cache laid out as huggingface_hub writes it:
// <cache>/models--org--name/{blobs/<sha256>, snapshots/<commit>/<file> → ../../blobs/<sha256>,
// refs/<ref>}.

/** The cache folder of a repo id. */
export function repoDir(cache: string, repoId: string): string {
  return `${cache}/models--${repoId.replaceAll("/", "--")}`;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Add snapshot `commit` of `repoId`: every file a blob named by its SHA-256, linked from the
 * snapshot by a relative symlink; the snapshot folder's modification time set to `mtime`
 * (seconds) when given. Returns the snapshot directory.
 */
export async function addSnapshot(
  cache: string,
  repoId: string,
  commit: string,
  files: Record<string, string | Uint8Array<ArrayBuffer>>,
  mtime?: number,
): Promise<string> {
  const repo = repoDir(cache, repoId), snapshot = `${repo}/snapshots/${commit}`;
  await Deno.mkdir(`${repo}/blobs`, { recursive: true });
  await Deno.mkdir(snapshot, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    const blob = await sha256(bytes);
    await Deno.writeFile(`${repo}/blobs/${blob}`, bytes);
    // Deno.symlink needs unscoped --allow-write; the test task grants only /tmp (and --allow-run)
    const ln = await new Deno.Command("ln", {
      args: ["-s", `../../blobs/${blob}`, `${snapshot}/${name}`],
    }).output();
    if (!ln.success) throw new Error(`ln -s failed: ${new TextDecoder().decode(ln.stderr)}`);
  }
  if (mtime !== undefined) await Deno.utime(snapshot, mtime, mtime);
  return snapshot;
}

/** Write refs/<ref> of `repoId` naming `commit` (as huggingface_hub does, no newline). */
export async function setRef(
  cache: string,
  repoId: string,
  ref: string,
  commit: string,
): Promise<void> {
  const refs = `${repoDir(cache, repoId)}/refs`;
  await Deno.mkdir(refs, { recursive: true });
  await Deno.writeTextFile(`${refs}/${ref}`, commit);
}
