// Elementwise ops reject bad inputs with messages that name the op and both operands.
import fc from "fast-check";
import { tensor } from "../../tensor/create.ts";
import { add, mul, where } from "../../tensor/ops/elementwise.ts";
import { fmtShape } from "../../tensor/tensor.ts";
import { shape } from "../arbitraries.ts";
import { assert, assertThrows } from "../assert.ts";
import { assertProperty } from "../fc.ts";

const broadcasts = (a: readonly number[], b: readonly number[]) => {
  for (let i = 1; i <= Math.min(a.length, b.length); i++) {
    const x = a[a.length - i]!, y = b[b.length - i]!;
    if (x !== y && x !== 1 && y !== 1) return false;
  }
  return true;
};

Deno.test("add() with shapes that do not broadcast throws naming the op and both shapes", async () => {
  const pairs = fc.tuple(shape({ minRank: 1 }), shape({ minRank: 1 }))
    .filter(([a, b]) => !broadcasts(a, b));
  await assertProperty(
    fc.property(pairs, ([sa, sb]) => {
      const a = tensor(new Float32Array(sa.reduce((x, y) => x * y, 1)), sa);
      const b = tensor(new Float32Array(sb.reduce((x, y) => x * y, 1)), sb);
      try {
        assertThrows(() => add(a, b), (e: Error) => {
          assert(e.message.startsWith("add: "), e.message);
          assert(e.message.includes(fmtShape(sa)) && e.message.includes(fmtShape(sb)), e.message);
          return true;
        });
      } finally {
        a.dispose();
        b.dispose();
      }
    }),
    30,
  );
});

Deno.test("add() of f32 and i32 throws naming both dtypes and shapes", () => {
  const a = tensor([1, 2, 3]), b = tensor(Int32Array.from([1, 2, 3]));
  assertThrows(() => add(a, b), { message: "add: dtype mismatch: f32 [3] vs i32 [3]" });
  assertThrows(() => mul(b, a), { message: "mul: dtype mismatch: i32 [3] vs f32 [3]" });
  a.dispose();
  b.dispose();
});

Deno.test("where() with a float condition throws naming the op and its shape", () => {
  const c = tensor([1, 0]), a = tensor([1, 2]);
  assertThrows(() => where(c, a, a), { message: "where: condition must be i32, got f32 [2]" });
  c.dispose();
  a.dispose();
});
