// The vision tower against the tiny-a goldens (reference backend), plus its building blocks:
// patch flattening, the resampler's sin-cos table and load-time errors.
import { expect } from "chai";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ReferenceBackend } from "../reference/backend.js";
import { VarBuilder } from "../src/io/var-builder.js";
import { f16ToF32, f32ToF16 } from "../src/io/fp16.js";
import { VisionTower } from "../src/model/vision.js";
import { hostData } from "../src/ops/host.js";
import { sincosOmega, sincosPosEmbed2d } from "../src/model/sincos.js";
import { runVisionCase } from "../src/conformance/vision.js";

// Compiled to dist/test/, so the fixtures are two levels up.
const FIXTURES = fileURLToPath(new URL("../../test/fixtures/", import.meta.url));
const TINY = FIXTURES + "tiny-a/";
const CHECKPOINT = TINY + "checkpoint";

describe("vision tower", function () {
  this.timeout(120_000); // six full towers on the plain-TypeScript backend

  it("flattens patches in raster order, each as (channel, row, column) like conv1.weight", () => {
    const S = 4, P = 2;
    const pixels = new Float32Array(3 * S * S).map((_, i) => i); // value = c·16 + y·4 + x
    const be = new ReferenceBackend();
    const rows = be.patchRows(be.fromHost(pixels, [3, S, S]), P);
    expect(rows.shape).to.deep.equal([4, 12]); // [4 patches, 3·2·2]
    const t = hostData(rows);
    // patch 1 = (py 0, px 1): rows 0-1, columns 2-3 of each channel.
    expect(Array.from(t.subarray(12, 24))).to.deep.equal([2, 3, 6, 7, 18, 19, 22, 23, 34, 35, 38, 39]);
    // patch 2 = (py 1, px 0).
    expect(Array.from(t.subarray(24, 28))).to.deep.equal([8, 9, 12, 13]);
  });

  it("computes the 2-D sin-cos table with w in the first half and h in the second", () => {
    const D = 16, G = 3;
    const t = sincosPosEmbed2d(D, G);
    const omega = sincosOmega(D / 2);
    // 1 / 10000^(i/4): exactly 1, 1/10, 1/100, 1/1000 rounded to float32.
    expect(Array.from(omega)).to.deep.equal([1, Math.fround(0.1), Math.fround(0.01), Math.fround(0.001)]);
    const row = (h: number, w: number) => Array.from(t.subarray((h * G + w) * D, (h * G + w + 1) * D));
    expect(row(0, 0)).to.deep.equal([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]);
    // (h 0, w 2): the first half encodes w = 2, the second half h = 0.
    const r = row(0, 2);
    expect(r[0]).to.equal(Math.fround(Math.sin(2)));
    expect(r[4]).to.equal(Math.fround(Math.cos(2)));
    expect(r.slice(8)).to.deep.equal([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(row(2, 0).slice(0, 8)).to.deep.equal([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(() => sincosPosEmbed2d(18, 2)).to.throw(/multiple of 4/);
  });

  it("finds the checkpoint's fp16 pos_embed equal to the sin-cos definition rounded to fp16", () => {
    const { vb, config, checkpoint } = VarBuilder.open(CHECKPOINT);
    const E = config.visual.outputDim;
    const stored = vb.pp("transformer.visual.attn_pool").f32("pos_embed", [256, E]);
    checkpoint.close();
    const def = sincosPosEmbed2d(E, 16);
    for (let i = 0; i < def.length; i++) {
      const h = f16ToF32(f32ToF16(def[i]));
      // Half an fp16 step of rounding, plus NumPy's float32 pow/sin being a few f32 ulps off the
      // correctly rounded values used here (measured ≤ 5e-7 at this width).
      const halfStep = Math.abs(f16ToF32(f32ToF16(def[i]) + 1) - h) / 2;
      expect(Math.abs(stored[i] - def[i]), `element ${i}`).to.be.at.most(halfStep + 1e-6);
    }
  });

  it("names the tensor when the config disagrees with the checkpoint, and checks its input", () => {
    const { vb, config, checkpoint } = VarBuilder.open(CHECKPOINT);
    const be = new ReferenceBackend();
    expect(() => VisionTower.load(vb, { ...config.visual, width: 64, heads: 2 }, be)).to.throw(/transformer\.visual\.conv1\.weight/);
    expect(() => VisionTower.load(vb, { ...config.visual, mlpWidth: 631 }, be)).to.throw(/resblocks\.0\.mlp\.c_fc/);
    expect(() => VisionTower.load(vb, { ...config.visual, heads: 3 }, be)).to.throw(/not divisible by heads/);
    const tower = VisionTower.load(vb, config.visual, be);
    checkpoint.close();
    expect(() => tower.encode(new Float32Array(10))).to.throw(/expected 3×448×448/);
  });

  const cases = readdirSync(TINY).filter((f) => f.startsWith("vision-") && f.endsWith(".msgpack")).sort();
  it("has the six tiny-a vision cases", () => expect(cases).to.have.length(6));

  const backend = new ReferenceBackend(); // one backend: the tower is loaded once for all cases
  for (const f of cases) {
    it(`passes ${f}`, async () => {
      const lines: string[] = [];
      const { ok, checks } = await runVisionCase(TINY + f, {
        checkpointDir: CHECKPOINT, imagesDir: FIXTURES + "images", backend, log: (l) => lines.push(l),
      });
      const report = lines.join("\n");
      expect(ok, report).to.equal(true);
      for (const name of ["pixels_u8", "vit.ln_pre", "vit.block.0", "vit.block.1", "vit.resampler", "image_embeds"]) {
        expect(lines.some((l) => l.includes(` ok   ${name} `)), `${name} in\n${report}`).to.equal(true);
      }
      // The reference backend sums in f64, so it lands near 2e-6; 1e-5 still catches subtle slips the
      // 1e-4 conformance bar lets through (LayerNorm eps 1e-5 instead of 1e-6 gives 1e-5..3e-5).
      for (const c of checks) expect(c.relL2, `${c.name}\n${report}`).to.be.below(1e-5);
    });
  }
});
