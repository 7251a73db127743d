// Sharded runs (`--shard I/N`): worker I of N processes the data set's units I, I+N, I+2N, …,
// where a unit's index is its position in the list a single run processes — after the same
// filtering (malformed rows skipped, --max-samples / --max-rows applied, and for dp empty
// rows dropped). That index depends only on the data file and the flags, so it is the same on
// every run and machine; `deno task merge` puts the shards back together (experiments/merge.ts).
import { UserError } from "./cli.ts";

/** Which slice of the data set one worker processes. */
export interface Shard {
  index: number;
  count: number;
}

/** The `--shard` flag every data-set command shares. */
export const shardFlag = {
  type: "string",
  metavar: "I/N",
  help: "process only units I, I+N, I+2N, … of the data set (0 ≤ I < N); join with deno task merge",
} as const;

/**
 * The shard named by `--shard I/N` (null without the flag); anything but two decimal
 * integers with 0 ≤ I < N is a usage error.
 * @example
 * parseShard("2/8"); // { index: 2, count: 8 }
 */
export function parseShard(text: string | undefined): Shard | null {
  if (text === undefined) return null;
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m) {
    throw new UserError(
      `--shard expects I/N, two integers with 0 ≤ I < N (e.g. 0/8), got '${text}'`,
      2,
    );
  }
  const index = Number(m[1]), count = Number(m[2]);
  if (count < 1) throw new UserError(`--shard ${text}: the shard count N must be ≥ 1`, 2);
  if (index >= count) {
    throw new UserError(`--shard ${text}: the index I must be below N (0 ≤ I < ${count})`, 2);
  }
  return { index, count };
}

/** Whether unit `index` of the data set belongs to the shard (every unit without one). */
export function inShard(shard: Shard | null, index: number): boolean {
  return shard === null || index % shard.count === shard.index;
}

/** The units of a data set that belong to the shard, each with its index in the data set. */
export function shardItems<T>(
  items: readonly T[],
  shard: Shard | null,
): { index: number; item: T }[] {
  return items.flatMap((item, index) => inShard(shard, index) ? [{ index, item }] : []);
}

/**
 * The units of all shards (listed by shard index) back in data-set order, after checking that
 * shard I holds exactly units I, I+N, … of the N units they hold together; a mismatch (shards
 * of different data, or a hand-edited file) is an error naming the shard's file and `what`.
 */
export function unshard<T>(
  parts: readonly { path: string; items: readonly T[] }[],
  indexOf: (item: T) => number,
  what: string,
): T[] {
  const n = parts.length, total = parts.reduce((a, p) => a + p.items.length, 0);
  const all: T[] = new Array(total);
  parts.forEach(({ path, items }, i) => {
    const expected = Math.max(0, Math.ceil((total - i) / n));
    if (items.length !== expected) {
      throw new UserError(
        `${path}: ${what}: shard ${i}/${n} holds ${items.length} units, but ${expected} of the ${total} the shards hold together (shards of different data?)`,
      );
    }
    items.forEach((item, k) => {
      const want = i + k * n, got = indexOf(item);
      if (got !== want) {
        throw new UserError(
          `${path}: ${what}: shard ${i}/${n} should hold unit ${want} next, found ${got} (shards of different data?)`,
        );
      }
      all[want] = item;
    });
  });
  return all;
}
