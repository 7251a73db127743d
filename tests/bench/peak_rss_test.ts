// Reading peak RSS: a /proc status text's VmHWM, GNU time's %M line, and this process's own.
import { assert, assertEquals } from "../assert.ts";
import { peakRssMb, timeMaxRssMb, vmHwmMb } from "../../bench/peak_rss.ts";

Deno.test("vmHwmMb() reads VmHWM (kB) as MiB and is NaN without it", () => {
  const status = [
    "Name:\tdeno",
    "State:\tS (sleeping)",
    "VmPeak:\t 9999999 kB",
    "VmHWM:\t 3670016 kB",
    "VmRSS:\t 1024000 kB",
  ].join("\n");
  assertEquals(vmHwmMb(status), 3584);
  assert(Number.isNaN(vmHwmMb("Name:\tdeno\nState:\tZ (zombie)\n")), "a zombie has no VmHWM");
  assert(Number.isNaN(vmHwmMb("")));
});

Deno.test("timeMaxRssMb() reads the %M line GNU time appends, after a failure notice too", () => {
  assertEquals(timeMaxRssMb("dp: wrote out.json\n2097152\n"), 2048);
  assertEquals(timeMaxRssMb("dp: error: x\nCommand exited with non-zero status 1\n1536\n"), 1.5);
  assert(Number.isNaN(timeMaxRssMb("dp: wrote out.json\n")), "no %M line");
  assert(Number.isNaN(timeMaxRssMb("")));
  assert(Number.isNaN(timeMaxRssMb("2097152\ndp: 1/1 (100%)\n")), "only the last line counts");
});

Deno.test("peakRssMb() sees memory this process touched", () => {
  const before = peakRssMb();
  const block = new Uint8Array(256 << 20).fill(1);
  const after = peakRssMb();
  // a high-water mark: at least what is resident now, and never lower than before
  assert(before > 0 && after >= before && after > 256, `${before} → ${after} MB`);
  assertEquals(block[block.length - 1], 1);
});
