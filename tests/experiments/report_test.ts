// End to end: `deno task report --quick` runs every stage of the paper's pipeline on the
// default model and writes a report.json whose numbers are internally consistent.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { reportTargets } from "../../experiments/report.ts";
import { claims, type ReportData } from "../../experiments/report_markdown.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "report --quick runs every stage and writes a consistent report.json and REPORT.md",
  sanitizeResources: false,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "report-quick-" });
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${root}experiments/report.ts`, "--quick", "--out", out],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const r = await run();
    const stderr = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 0, stderr.slice(-2000));
    const d = JSON.parse(await Deno.readTextFile(`${out}/report.json`)) as ReportData;
    // one row per target (and the base) in every table
    assertDeepEqual(d.dp.map((x) => x.target), ["base", ...reportTargets]);
    assertDeepEqual(d.sts.map((x) => x.target), ["base", ...reportTargets]);
    assertDeepEqual(d.training.map((x) => x.target), reportTargets);
    // each sample's three fractions are f32 sums (golden README §6: 5e-7 per fraction, 10× on
    // WebGPU), so their percentages add to 100 within 1e-4
    for (const row of d.dp) {
      const total = row.dp_main + row.dp_before + row.dp_after;
      assert(Math.abs(total - 100) < 1e-4, `${row.target}: DP-M + DP-B + DP-A = ${total}`);
      for (const b of row.buckets.filter((x) => x.count > 0)) {
        const t = b.dp_main + b.dp_before + b.dp_after;
        assert(Math.abs(t - 100) < 1e-4, `${row.target} bucket ${b.range}: ${t}`);
      }
      assertEquals(row.buckets.reduce((a, b) => a + b.count, 0), row.samples);
    }
    for (const row of d.sts) {
      for (const s of row.sets) assert(Math.abs(s.spearman) <= 100, `${row.target} ${s.set}`);
    }
    assert(d.training.find((t) => t.target === "ALL")!.full, "ALL is full fine-tuning");
    assert(d.training.filter((t) => t.target !== "ALL").every((t) => !t.full), "the rest is LoRA");
    assertEquals(d.mc.results.length, 2, "base and UBMoE side by side");
    const layers = d.routing.layers;
    assert(layers.length > 0 && layers.every((l) => l.biFraction >= 0 && l.biFraction <= 1));
    assertEquals(claims(d).length, 5);
    const md = await Deno.readTextFile(`${out}/REPORT.md`);
    for (const heading of ["Table 2", "Table 3", "Table 4", "Figure 3", "How it was produced"]) {
      assert(md.includes(heading), `REPORT.md lacks ${heading}`);
    }
    for (const svg of ["heatmap-base", "heatmap-att", "heatmap-ffn", "routing"]) {
      assert((await Deno.stat(`${out}/figures/${svg}.svg`)).size > 0, svg);
    }
    // a second run recomputes nothing
    const again = await run();
    const log = new TextDecoder().decode(again.stderr);
    assertEquals(again.code, 0, log.slice(-2000));
    const stages = Object.keys(d.stages).length;
    assertEquals((log.match(/done earlier/g) ?? []).length, stages, log.slice(-2000));
    await Deno.remove(out, { recursive: true });
  },
});
