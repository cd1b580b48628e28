// Per-machine choice of the GPTQ kernels (src/ops/wasm/autotune.ts): the decision rule and the
// timing loop on a fake clock, option / environment parsing, and the probe of a real backend
// (valid choice, cached per process, forcing, no trace left in the arena).
import { hostData } from "../src/ops/host.js";
import { expect } from "chai";
import { Tensor, type GptqWeights } from "../src/ops/backend.js";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import { choose, DECODE_Q4, DROP, PREFILL_Q4, resolveSetting, timeVariants } from "../src/ops/wasm/autotune.js";
import { ReferenceBackend } from "../reference/backend.js";
import { f32ToF16 } from "../src/io/fp16.js";

function gptq(N: number, K: number, gs = 128): GptqWeights {
  let s = 7;
  const r = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32);
  const G = K / gs;
  return {
    kind: "gptq", inFeatures: K, outFeatures: N, bits: 4, groupSize: gs,
    qweight: Int32Array.from({ length: (K / 8) * N }, () => (r() * 2 ** 32) | 0),
    qzeros: Int32Array.from({ length: G * (N / 8) }, () => (r() * 2 ** 32) | 0),
    scales: Uint16Array.from({ length: G * N }, () => f32ToF16(0.002 + r() * 0.02)),
    gIdx: Int32Array.from({ length: K }, (_, i) => Math.floor(i / gs)),
  };
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe("GPTQ kernel autotuning", function () {
  this.timeout(30_000);

  describe("decision rule", () => {
    it("picks the variant with the smallest minimum time", () => {
      const r = choose({ i8x3: [300, 290, 310], i16x2: [200, 500, 190], f32: [250, 240, 260] }, "i8x3");
      expect(r.choice).to.equal("i16x2");
      expect(r.timings.i16x2.minUs).to.equal(190);
      expect(r.timings.i16x2.medianUs).to.equal(200);
      expect(r.reason).to.match(/i16x2 fastest, 1\.53× faster than i8x3/);
    });
    it("keeps the preferred (build default) variant within the margin", () => {
      const r = choose({ i8x3: [103], f32: [100] }, "i8x3", 0.05);
      expect(r.choice).to.equal("i8x3");
      expect(r.reason).to.match(/i8x3 kept: within 5% of f32/);
      expect(choose({ i8x3: [106], f32: [100] }, "i8x3", 0.05).choice).to.equal("f32");
    });
  });

  describe("timing loop", () => {
    it("warms up, rotates the order every round, and stops timing clear losers", () => {
      // Fake clock: each call advances it by the variant's cost.
      let t = 0;
      const cost: Record<string, number> = { a: 1, b: 1.2, c: 10 };
      const order: string[] = [];
      const runs = new Map(Object.keys(cost).map((n) => [n, () => { order.push(n); t += cost[n]; }]));
      const times = timeVariants(runs, 4, 1, () => t);
      expect(order.slice(0, 3)).to.deep.equal(["a", "b", "c"]); // warm-up
      expect(order.slice(3, 9)).to.deep.equal(["a", "b", "c", "b", "c", "a"]); // rounds 0, 1
      expect(times.a).to.have.length(4);
      expect(times.b).to.have.length(4);
      expect(times.c).to.have.length(2); // 10× the best > DROP: dropped after two rounds
      expect(DROP).to.be.below(10);
      expect(times.a[0]).to.be.closeTo(1000, 1e-9); // microseconds
    });
  });

  describe("settings", () => {
    it("option beats environment, environment beats auto", () => {
      const env = { QWENVL_DECODE_Q4: "f32" };
      expect(resolveSetting("decodeQ4", "i16x2", "QWENVL_DECODE_Q4", DECODE_Q4, env)).to.deep.equal({ value: "i16x2", source: "option" });
      expect(resolveSetting("decodeQ4", undefined, "QWENVL_DECODE_Q4", DECODE_Q4, env)).to.deep.equal({ value: "f32", source: "env" });
      expect(resolveSetting("decodeQ4", undefined, "QWENVL_DECODE_Q4", DECODE_Q4, {})).to.deep.equal({ value: "auto", source: "default" });
      expect(resolveSetting("decodeQ4", undefined, "QWENVL_DECODE_Q4", DECODE_Q4, { QWENVL_DECODE_Q4: " " }).value).to.equal("auto");
      expect(resolveSetting("prefillQ4", "auto", "QWENVL_PREFILL_Q4", PREFILL_Q4, { QWENVL_PREFILL_Q4: "f32" }).value).to.equal("auto");
    });
    it("unknown names are clear errors, for options and for the environment", () => {
      expect(() => resolveSetting("prefillQ4", "i16x2" as never, "QWENVL_PREFILL_Q4", PREFILL_Q4, {}))
        .to.throw(/prefillQ4 must be one of i8x3, f32 or "auto", got "i16x2"/);
      expect(() => resolveSetting("decodeQ4", undefined, "QWENVL_DECODE_Q4", DECODE_Q4, { QWENVL_DECODE_Q4: "fast" }))
        .to.throw(/QWENVL_DECODE_Q4 \(environment, for decodeQ4\) must be one of i8x3, i16x2, f32 or "auto", got "fast"/);
    });
    it("the backend reads the environment variables at construction", () => {
      const saved = { d: process.env.QWENVL_DECODE_Q4, p: process.env.QWENVL_PREFILL_Q4 };
      try {
        process.env.QWENVL_DECODE_Q4 = "f32";
        process.env.QWENVL_PREFILL_Q4 = "f32";
        const b = new WasmBackend({ threads: 1 });
        expect(b.tuning.source).to.deep.equal({ decodeQ4: "env", prefillQ4: "env" });
        expect([b.decodeQ4, b.prefillQ4]).to.deep.equal(["f32", "f32"]);
        expect(b.tuning.reason.decodeQ4).to.equal("forced by QWENVL_DECODE_Q4=f32");
        b.dispose();
        process.env.QWENVL_DECODE_Q4 = "i4";
        expect(() => new WasmBackend({ threads: 1 })).to.throw(/QWENVL_DECODE_Q4/);
      } finally {
        for (const [k, v] of [["QWENVL_DECODE_Q4", saved.d], ["QWENVL_PREFILL_Q4", saved.p]] as const) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    });
  });

  describe("probe on this machine", () => {
    const saved = { d: process.env.QWENVL_DECODE_Q4, p: process.env.QWENVL_PREFILL_Q4 };
    before(() => {
      delete process.env.QWENVL_DECODE_Q4;
      delete process.env.QWENVL_PREFILL_Q4;
    });
    after(() => {
      if (saved.d !== undefined) process.env.QWENVL_DECODE_Q4 = saved.d;
      if (saved.p !== undefined) process.env.QWENVL_PREFILL_Q4 = saved.p;
    });

    it("returns a valid choice with timings of every exact variant, once per process", () => {
      const b = new WasmBackend({ threads: 2 });
      try {
        const t = b.tuning;
        expect(DECODE_Q4).to.include(t.decodeQ4);
        expect(PREFILL_Q4).to.include(t.prefillQ4);
        expect(t.source).to.deep.equal({ decodeQ4: "probe", prefillQ4: "probe" });
        expect(Object.keys(t.timings.decodeQ4 ?? {}).sort()).to.deep.equal(["f32", "i16x2", "i8x3"]);
        expect(Object.keys(t.timings.prefillQ4 ?? {}).sort()).to.deep.equal(["f32", "i8x3"]);
        for (const v of Object.values(t.timings.decodeQ4 ?? {})) expect(v.minUs).to.be.greaterThan(0);
        expect(t.probeMs).to.be.greaterThan(0);
        expect(t.reason.decodeQ4).to.match(/min per call/);
        const again = new WasmBackend({ threads: 2 });
        expect(again.tuning.cached).to.equal(true);
        expect([again.decodeQ4, again.prefillQ4]).to.deep.equal([t.decodeQ4, t.prefillQ4]);
        again.dispose();
      } finally {
        b.dispose();
      }
    });

    it("forcing skips the probe; forcing one probes only the other", () => {
      const b = new WasmBackend({ threads: 2, decodeQ4: "i16x2", prefillQ4: "f32" });
      expect(b.tuning.probeMs).to.equal(0);
      expect(b.tuning.timings).to.deep.equal({});
      expect(b.tuning.reason.prefillQ4).to.equal('forced by option prefillQ4: "f32"');
      b.dispose();
      const c = new WasmBackend({ threads: 1, decodeQ4: "f32" });
      expect(c.decodeQ4).to.equal("f32");
      expect(c.tuning.source.prefillQ4).to.equal("probe");
      expect(c.tuning.timings.decodeQ4).to.equal(undefined);
      c.dispose();
      const f = new WasmBackend({ threads: 1, precision: "fast" });
      expect(f.tuning.source).to.deep.equal({ decodeQ4: "not probed", prefillQ4: "not probed" });
      f.dispose();
    });

    it("leaves the arena as it was: weights packed after the probe compute correctly", () => {
      const ref = new ReferenceBackend();
      const b = new WasmBackend({ threads: 2 });
      try {
        const w = gptq(64, 1024);
        const lin = b.linear(w); // runs (or reuses) the probe first
        for (const M of [1, 5]) {
          const x = new Tensor([M, 1024], Float32Array.from({ length: M * 1024 }, (_, i) => Math.cos(i)));
          expect(relL2(hostData(b.matmul(x, lin)), hostData(ref.matmul(x, ref.linear(w))))).to.be.below(1e-5);
        }
        expect(b.arenaCount).to.equal(1);
      } finally {
        b.dispose();
      }
    });
  });
});
