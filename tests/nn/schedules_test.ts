// Learning-rate schedules against hand-computed values.
import { hfLinearWarmup } from "../../nn/schedules.ts";
import { assertEquals, assertThrows } from "../assert.ts";

Deno.test("hfLinearWarmup() is transformers' get_linear_schedule_with_warmup stepped after each update", () => {
  const lr = hfLinearWarmup({ peak: 1, warmup: 4, total: 10 });
  // warmup: s/4 (the first update has rate 0); decay: (10 − s)/6, reaching 0 at step 10
  const want = [0, 0.25, 0.5, 0.75, 1, 5 / 6, 4 / 6, 0.5, 2 / 6, 1 / 6, 0, 0];
  want.forEach((w, s) =>
    assertEquals(Math.abs(lr(s) - w) < 1e-12, true, `step ${s}: ${lr(s)} vs ${w}`)
  );
  const noWarmup = hfLinearWarmup({ peak: 3e-4, warmup: 0, total: 4 });
  assertEquals(noWarmup(0), 3e-4);
  assertEquals(noWarmup(2), 1.5e-4);
  assertThrows(() => hfLinearWarmup({ peak: 1, warmup: 5, total: 4 }));
});
