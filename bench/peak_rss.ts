// Peak resident memory (Linux's high-water mark, VmHWM; GNU time's %M) of this process or of
// a child, in MiB (reported as "MB", as every *_peak_rss_mb figure). Deno guards /proc behind
// --allow-all, so /proc/<pid>/status is read through `cat` (the bench task may run programs).

/** VmHWM of a /proc/<pid>/status text in MiB, or NaN when it has none. */
export function vmHwmMb(status: string): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * The maximum RSS that `/usr/bin/time -f %M` appends to a command's stderr (its last line, in
 * KiB; after "Command exited with non-zero status N" when the command failed), in MiB, or NaN.
 */
export function timeMaxRssMb(stderr: string): number {
  const last = stderr.trimEnd().split("\n").pop()?.trim() ?? "";
  return /^\d+$/.test(last) ? Number(last) / 1024 : NaN;
}

/** /proc/<pid>/status of a live process, or null once it is gone. */
export function procStatus(pid: number): string | null {
  try {
    const out = new Deno.Command("cat", {
      args: [`/proc/${pid}/status`],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null;
  }
}

/** Peak resident set size of this process in MB (Linux VmHWM), or NaN. */
export function peakRssMb(): number {
  return vmHwmMb(procStatus(Deno.pid) ?? "");
}
