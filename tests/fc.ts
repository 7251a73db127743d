// The property-test settings (DESIGN 7): a fixed seed, overridable by FC_SEED, and the number
// of runs, overridable by FC_RUNS. fast-check prints the seed, the path and the shrunk
// counter-example when a property fails, so a failure replays with `FC_SEED=… FC_RUNS=…`.
import fc from "fast-check";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function positiveInt(name: string, fallback: number): number {
  const raw = env(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new Error(`${name}: expected an integer, got '${raw}'`);
  return n;
}

/** The seed of every property test: FC_SEED, default 42. */
export const fcSeed: number = positiveInt("FC_SEED", 42);

/** Runs per property: FC_RUNS when set, else the test's own default. */
export function fcRuns(fallback: number): number {
  return positiveInt("FC_RUNS", fallback);
}

/**
 * Check a property with the suite's seed; `runs` is the default number of runs (FC_RUNS
 * overrides it). Rejects with fast-check's report (seed, path, shrunk counter-example).
 */
export async function assertProperty<T>(
  property: fc.IProperty<T> | fc.IAsyncProperty<T>,
  runs: number,
): Promise<void> {
  await fc.assert(property as fc.IAsyncProperty<T>, { seed: fcSeed, numRuns: fcRuns(runs) });
}
