// dropout(): the kept fraction, the scale, the mask as a pure function of (seed, index), and
// the same mask bit for bit on every backend.
import { grad } from "../../autograd/grad.ts";
import { full, tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { dropout, dropoutHash } from "../../tensor/ops/dropout.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { Rng } from "../../tensor/random.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert, assertDeepEqual, assertEquals, assertThrows } from "../assert.ts";
import { backends, webgpuBackends } from "../backends.ts";

const n = 100_000;

/**
 * Hoeffding: for n independent Bernoulli(q) draws, P(|mean − q| ≥ t) ≤ 2·exp(−2nt²); this t
 * makes that < 1e-9 (t ≈ 0.0104 for n = 100k).
 */
const bound = (count: number) => Math.sqrt(Math.log(2e9) / (2 * count));

/** The keep mask (1 kept, 0 dropped) of dropout over `count` ones. */
function keepMask(device: Device, count: number, p: number, seed: number): Promise<Uint8Array> {
  return scopeAsync(async () => {
    const y = await dropout(full([count], 1, { device }), p, seed).data();
    return Uint8Array.from(y, (v) => (v !== 0 ? 1 : 0));
  });
}

const mean = (mask: Uint8Array) => mask.reduce((a, b) => a + b, 0) / mask.length;

for (const device of backends) {
  Deno.test(`dropout() keeps a fraction 1 − p of 100k elements (${device.name})`, async () => {
    for (const [p, seed] of [[0.05, 1], [0.5, 2], [0.9, 0xffffffff]] as const) {
      const kept = mean(await keepMask(device, n, p, seed));
      assert(
        Math.abs(kept - (1 - p)) < bound(n),
        `p ${p}, seed ${seed}: kept ${kept}, expected ${1 - p} ± ${bound(n)}`,
      );
    }
  });

  Deno.test(`dropout() masks of different seeds are independent (${device.name})`, async () => {
    // two independent Bernoulli(q) masks disagree at a fraction 2q(1 − q)
    const q = 0.7;
    for (const [a, b] of [[0, 1], [7, 8], [0, 0x80000000]] as const) {
      const ma = await keepMask(device, n, 1 - q, a), mb = await keepMask(device, n, 1 - q, b);
      const differ = ma.reduce((s, v, i) => s + (v !== mb[i] ? 1 : 0), 0) / n;
      assert(
        Math.abs(differ - 2 * q * (1 - q)) < bound(n),
        `seeds ${a}, ${b}: masks differ at ${differ}, expected ${2 * q * (1 - q)}`,
      );
    }
  });

  Deno.test(`dropout() with the same seed gives the same mask (${device.name})`, async () => {
    const first = await keepMask(device, 10_001, 0.3, 12345);
    assertDeepEqual(await keepMask(device, 10_001, 0.3, 12345), first);
  });

  Deno.test(`dropout() scales kept values by 1/(1 − p) (${device.name})`, async () => {
    const rng = new Rng(3);
    const values = Float32Array.from({ length: 4099 }, () => rng.normal());
    for (const p of [0.1, 0.5, 0.75]) {
      const y = await scopeAsync(() => dropout(tensor(values, [4099], { device }), p, 9).data());
      const scale = 1 / (1 - p);
      let kept = 0;
      y.forEach((v, i) => {
        if (v === 0) return;
        kept++;
        const want = values[i]! * scale;
        assert(Math.abs(v - want) <= 1e-6 * Math.abs(want), `p ${p}, ${i}: ${v} vs ${want}`);
      });
      assert(kept > 0 && kept < values.length, `p ${p}: kept ${kept} of ${values.length}`);
    }
  });

  Deno.test(`dropout() gradient is the same mask and scale (${device.name})`, async () => {
    await scopeAsync(async () => {
      const rng = new Rng(5);
      const x = full([1000], 2, { device });
      const w = tensor(Float32Array.from({ length: 1000 }, () => rng.normal()), [1000], { device });
      // d/dx Σ dropout(x)·w = dropout(w)
      const g = grad((x: Tensor) => sum(mul(dropout(x, 0.4, 77), w)))(x);
      assertDeepEqual(await g.data(), await dropout(w, 0.4, 77).data());
    });
  });
}

for (const device of webgpuBackends) {
  Deno.test(`dropout() on ${device.name} draws the reference's mask bit for bit`, async () => {
    // 100,003 elements: the last texel is partly outside the tensor
    for (const [p, seed] of [[0.05, 0], [0.5, 4242], [0.9, 0xfffffffe]] as const) {
      const [want, got] = [
        await keepMask(referenceDevice, 100_003, p, seed),
        await keepMask(device, 100_003, p, seed),
      ];
      const first = want.findIndex((v, i) => v !== got[i]);
      assertEquals(first, -1, `p ${p}, seed ${seed}: masks differ first at element ${first}`);
    }
  });
}

Deno.test("dropout() hash values are fixed (a seed reproduces its mask across versions)", () => {
  assertDeepEqual(
    [dropoutHash(0, 0), dropoutHash(0, 1), dropoutHash(1, 0), dropoutHash(0xffffffff, 99)],
    [0x944fb554, 0xc67c684d, 0xc0951f9f, 0xe13a49ba],
  );
});

Deno.test("dropout() with p = 0 returns x; bad p or seed throws naming the op", () => {
  const x = full([3], 1, { device: referenceDevice });
  assert(dropout(x, 0, 5) === x);
  assertThrows(() => dropout(x, 1, 0), { message: "dropout: p must be in [0, 1), got 1" });
  assertThrows(() => dropout(x, -0.1, 0), /dropout: p must be in \[0, 1\), got -0.1/);
  assertThrows(() => dropout(x, 0.5, -1), /dropout: seed must be an integer in \[0, 2³²\)/);
  assertThrows(() => dropout(x, 0.5, 2 ** 32), /dropout: seed must be an integer/);
  const ids = tensor(Int32Array.from([1, 2]), [2], { device: referenceDevice });
  assertThrows(() => dropout(ids, 0.5, 0), {
    message: "dropout: needs a float tensor, got i32 [2]",
  });
});
