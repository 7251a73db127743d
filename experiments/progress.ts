// Progress on stderr (DESIGN 6): done/total, rate, ETA — a redrawn line on a TTY, a plain
// line every few seconds otherwise.

/** Reports progress of `total` units (samples, steps) measured in `unit` (tokens, …). */
export class Progress {
  readonly #start = performance.now();
  #last = 0;
  #amount = 0;
  readonly #tty = Deno.stderr.isTerminal();

  constructor(
    readonly label: string,
    readonly total: number,
    readonly unit: string,
    readonly intervalMs = 3000,
  ) {}

  /**
   * Record `done` finished units (fractional while a unit is part done, e.g. a streamed chunk
   * between layers) and `amount` more of the measured unit; print when due.
   */
  update(done: number, amount: number, extra = ""): void {
    this.#amount += amount;
    const now = performance.now();
    if (!this.#tty && now - this.#last < this.intervalMs && done < this.total) return;
    this.#last = now;
    const seconds = (now - this.#start) / 1000;
    const rate = this.#amount / Math.max(seconds, 1e-9);
    const eta = done > 0 ? ((this.total - done) * seconds) / done : NaN;
    const line = `${this.label}: ${Math.floor(done)}/${this.total} (${
      ((100 * done) / Math.max(1, this.total)).toFixed(0)
    }%)  ${rate.toFixed(1)} ${this.unit}/s  ETA ${formatSeconds(eta)}${extra ? `  ${extra}` : ""}`;
    const bytes = new TextEncoder().encode(this.#tty ? `\r\x1b[K${line}` : `${line}\n`);
    Deno.stderr.writeSync(bytes);
  }

  /** End the progress line (on a TTY). */
  done(): void {
    if (this.#tty) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  }
}

/** 75 → "1m15s"; NaN → "?". */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m`;
}
