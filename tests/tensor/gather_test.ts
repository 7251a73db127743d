// gather / scatterAdd reject bad inputs with messages that name the op and both shapes.
import { tensor } from "../../tensor/create.ts";
import { gather, scatterAdd } from "../../tensor/ops/gather.ts";
import { assertThrows } from "../assert.ts";

Deno.test("gather() with float indices throws naming the op and both shapes", () => {
  const table = tensor(new Float32Array(12), [4, 3]), ids = tensor([0, 2, 1]);
  assertThrows(() => gather(table, ids), {
    message: "gather: indices must be i32, got f32 [3] (table [4,3])",
  });
  table.dispose();
  ids.dispose();
});

Deno.test("scatterAdd() with indices that do not prefix the source throws naming both shapes", () => {
  const src = tensor(new Float32Array(6), [2, 3]), ids = tensor(Int32Array.from([0, 1, 2]));
  assertThrows(() => scatterAdd(src, ids, 4), {
    message: "scatterAdd: indices [3] do not prefix source [2,3]",
  });
  const floatIds = tensor([0, 1]);
  assertThrows(() => scatterAdd(src, floatIds, 4), {
    message: "scatterAdd: indices must be i32, got f32 [2] (source [2,3])",
  });
  src.dispose();
  ids.dispose();
  floatIds.dispose();
});
