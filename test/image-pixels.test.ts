// Backend.imagePixels (the resize to the tower's size and the CLIP normalisation) and
// Backend.patchRows on every backend, bit for bit against src/image/'s own
// normalizeCLIP(resizeBicubicPIL(...)) and the reference's patchRows. On WebGPU the resize is
// resize_bicubic.wgsl (i32 fixed point, Pillow's passes); the sizes below take each of its paths:
// both passes, one skipped (either way), none, single-pixel images and outputs, a real photo.
// QwenVL.encodeImage, which goes through imagePixels, is checked against the host pipeline
// (preprocessImage + encodePixels) on tiny-a.
// Runs on whatever adapter Dawn finds (CI: lavapipe); without one the WebGPU part skips locally
// and fails under CI=true (webgpu-acquire.ts).
import { expect } from "chai";
import { readFileSync } from "node:fs";
import type { Backend } from "../src/ops/backend.js";
import { ReferenceBackend } from "../reference/backend.js";
import { WasmBackend } from "../src/ops/wasm/backend.js";
import type { WebGpuBackend } from "../src/ops/webgpu/backend.js";
import { loadImage } from "../src/image/decode.js";
import { normalizeCLIP } from "../src/image/preprocess.js";
import { resizeBicubicPIL } from "../src/image/resize.js";
import { preprocessImage } from "../src/image/preprocess.js";
import { QwenVL } from "../src/model/qwen-vl.js";
import { acquire, ctxOf, rand, recordDispatches } from "./webgpu-acquire.js";

const FIXTURES = new URL("./fixtures/", import.meta.url.replace("/dist/test/", "/test/"));
const DEMO = new URL("images/demo.jpeg", FIXTURES);
const TINY = new URL("tiny-a/checkpoint", FIXTURES).pathname;

/** Deterministic bytes: uniform (seeded), or a 0/255 checkerboard (every filter overshoot clipped). */
function pixels(w: number, h: number, seed: number, kind: "random" | "checker" = "random"): Uint8Array {
  if (kind === "checker") return Uint8Array.from({ length: w * h * 3 }, (_, i) => ((Math.floor(i / 3) % w + Math.floor(i / 3 / w)) % 2) * 255);
  return Uint8Array.from(rand(w * h * 3, seed, 0, 256), (v) => Math.min(255, Math.floor(v)));
}

interface Case { readonly what: string; readonly w: number; readonly h: number; readonly size: number; readonly rgb: () => Uint8Array | Promise<Uint8Array>; readonly passes: number }

const CASES: Case[] = [
  { what: "downscale 1001×667 → 448 (both passes)", w: 1001, h: 667, size: 448, rgb: () => pixels(1001, 667, 1), passes: 2 },
  { what: "upscale 37×53 → 448", w: 37, h: 53, size: 448, rgb: () => pixels(37, 53, 2), passes: 2 },
  { what: "448×300 → 448 (width unchanged: vertical pass only)", w: 448, h: 300, size: 448, rgb: () => pixels(448, 300, 3), passes: 1 },
  { what: "300×448 → 448 (height unchanged: horizontal pass only)", w: 300, h: 448, size: 448, rgb: () => pixels(300, 448, 4), passes: 1 },
  { what: "64×64 → 64 (no pass: normalisation only)", w: 64, h: 64, size: 64, rgb: () => pixels(64, 64, 5), passes: 1 },
  { what: "5×3 → 7 (tiny, non-square)", w: 5, h: 3, size: 7, rgb: () => pixels(5, 3, 6), passes: 2 },
  { what: "checkerboard 23×17 → 40 (overshoots clipped at 0 and 255)", w: 23, h: 17, size: 40, rgb: () => pixels(23, 17, 0, "checker"), passes: 2 },
  { what: "checkerboard 97×61 → 20", w: 97, h: 61, size: 20, rgb: () => pixels(97, 61, 0, "checker"), passes: 2 },
  { what: "1×1 → 1", w: 1, h: 1, size: 1, rgb: () => pixels(1, 1, 7), passes: 1 },
  { what: "1×1 → 9", w: 1, h: 1, size: 9, rgb: () => pixels(1, 1, 8), passes: 2 },
  { what: "9×1 → 1", w: 9, h: 1, size: 1, rgb: () => pixels(9, 1, 9), passes: 1 },
  { what: "1×9 → 1", w: 1, h: 9, size: 1, rgb: () => pixels(1, 9, 10), passes: 1 },
  { what: "6×4 → 1", w: 6, h: 4, size: 1, rgb: () => pixels(6, 4, 11), passes: 2 },
  {
    what: "demo.jpeg 2048×1365 → 448 (a photo)", w: 2048, h: 1365, size: 448, passes: 2,
    rgb: async () => (await loadImage(new Uint8Array(readFileSync(DEMO)), { name: "demo.jpeg" })).rgb,
  },
];

/** Elements whose f32 bit patterns differ, the first of them, and the largest |difference|. */
function compare(got: Float32Array, want: Float32Array): { differing: number; first: number; maxAbs: number } {
  expect(got.length).to.equal(want.length);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length), w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let differing = 0, first = -1, maxAbs = 0;
  for (let i = 0; i < g.length; i++) {
    if (g[i] === w[i]) continue;
    if (differing++ === 0) first = i;
    maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
  }
  return { differing, first, maxAbs };
}

/** be.imagePixels equals normalizeCLIP(resizeBicubicPIL(...)) bit for bit. */
async function expectExact(be: Backend, rgb: Uint8Array, w: number, h: number, size: number): Promise<void> {
  const want = normalizeCLIP(resizeBicubicPIL(rgb, w, h, size, size), size);
  const t = be.imagePixels(rgb, w, h, size);
  expect(t.shape).to.deep.equal([3, size, size]);
  const got = await be.read(t);
  be.release(t);
  const r = compare(got, want);
  expect(r.differing, `${r.differing} of ${want.length} values differ (max abs diff ${r.maxAbs}); first at ${r.first}: ${got[r.first]} vs ${want[r.first]}`).to.equal(0);
}

/** The tests every backend runs. */
function imagePixelsTests(make: (ctx: Mocha.Context) => Promise<Backend>, onDispatch?: (be: Backend) => () => number): void {
  let be: Backend;
  let dispatched: (() => number) | undefined;
  before(async function () {
    be = await make(this);
    dispatched = onDispatch?.(be);
  });
  after(async () => {
    await be?.dispose?.();
  });

  for (const c of CASES) {
    it(c.what, async () => {
      const before = dispatched?.();
      await expectExact(be, await c.rgb(), c.w, c.h, c.size);
      // On WebGPU: one dispatch per pass that resize.ts runs (one for the normalisation alone).
      if (dispatched && before !== undefined) expect(dispatched() - before, "resize_bicubic dispatches").to.equal(c.passes);
    });
  }

  it("takes RGB bytes at any offset of their buffer", async () => {
    const w = 13, h = 11;
    const buf = new Uint8Array(w * h * 3 + 3);
    buf.set(pixels(w, h, 12), 1);
    await expectExact(be, buf.subarray(1, 1 + w * h * 3), w, h, 16);
  });

  it("refuses bad sizes and a buffer of the wrong length, naming them", () => {
    expect(() => be.imagePixels(new Uint8Array(12), 2, 2, 0)).to.throw(/imagePixels: size must be a positive integer, got 0/);
    expect(() => be.imagePixels(new Uint8Array(12), 2.5, 2, 4)).to.throw(/imagePixels: width must be a positive integer/);
    expect(() => be.imagePixels(new Uint8Array(11), 2, 2, 4)).to.throw(/imagePixels: 11 bytes of RGB, expected 2×2×3 = 12/);
  });

  it("QwenVL.encodeImage goes through imagePixels: the pixels it traces are preprocessImage's, its embeddings encodePixels'", async () => {
    const model = await QwenVL.load(TINY, { backend: be });
    const bytes = new Uint8Array(readFileSync(new URL("images/radar.png", FIXTURES)));
    const { pixels } = await preprocessImage(bytes, { imageSize: model.config.visual.imageSize });
    let traced: Promise<Float32Array> | undefined;
    const embeds = await model.encodeImage(bytes, "radar.png", { trace: (name, t) => { if (name === "pixels") traced = be.read(t); } });
    expect(traced, "a \"pixels\" trace").to.not.equal(undefined);
    expect(compare(await traced!, pixels).differing).to.equal(0);
    const want = model.encodePixels(pixels);
    expect(compare(await be.read(embeds), await be.read(want)).differing).to.equal(0);
    be.release(embeds, want);
  });

  it("patchRows: the patches of [C, H, W] as rows, as the reference flattens them", async () => {
    const ref = new ReferenceBackend();
    for (const [C, H, W, P] of [[3, 28, 42, 14], [2, 6, 4, 2], [1, 5, 5, 1], [3, 7, 7, 7]]) {
      const x = rand(C * H * W, C * 1000 + H * 10 + P);
      const want = await ref.read(ref.patchRows(ref.fromHost(x, [C, H, W]), P));
      const t = be.patchRows(be.fromHost(x, [C, H, W]), P);
      expect(t.shape).to.deep.equal([(H / P) * (W / P), C * P * P]);
      expect(compare(await be.read(t), want).differing, `[${C}, ${H}, ${W}] P ${P}`).to.equal(0);
      be.release(t);
    }
    expect(() => be.patchRows(be.fromHost(new Float32Array(12), [3, 2, 2]), 3)).to.throw(/patchRows: x \[3, 2, 2\] must be \[C, H, W\] with H and W multiples of the patch size 3/);
  });
}

describe("imagePixels, patchRows: reference backend", function () {
  this.timeout(60_000);
  imagePixelsTests(async () => new ReferenceBackend());
});

describe("imagePixels, patchRows: wasm backend", function () {
  this.timeout(60_000);
  imagePixelsTests(async () => new WasmBackend({ threads: 2 }));
});

describe("imagePixels, patchRows: webgpu backend (resize_bicubic.wgsl)", function () {
  this.timeout(300_000);
  imagePixelsTests(async (ctx) => {
    const gpu = await acquire(ctx);
    console.log(`    adapter: ${gpu.name}`);
    return gpu;
  }, (be) => {
    const ran: string[] = [];
    const ctx = ctxOf(be as WebGpuBackend);
    const dispatch = ctx.dispatch.bind(ctx);
    ctx.dispatch = (name, ...rest) => {
      ran.push(name);
      dispatch(name, ...rest);
    };
    return () => ran.filter((n) => n === "resize_bicubic").length;
  });

  describe("images too large for one storage binding", () => {
    let gpu: WebGpuBackend;
    before(async function () {
      gpu = await acquire(this);
    });
    after(async () => {
      await gpu?.dispose();
    });

    it("is a clear error naming the limit (the source bytes, or the horizontal pass's result), and the backend goes on", async () => {
      const ctx = ctxOf(gpu) as unknown as { maxBinding: number };
      // The device's own limit where arrays of that size are affordable in a test (lavapipe,
      // Dawn's default: 128 MiB), else the same check against a lowered one.
      const own = ctx.maxBinding;
      const real = own <= 2 ** 28;
      if (!real) ctx.maxBinding = 2 ** 27;
      const limit = ctx.maxBinding;
      try {
        // Source: the smallest 4096-wide image over the limit.
        const h = Math.floor(limit / (4096 * 3)) + 1;
        expect(() => gpu.imagePixels(new Uint8Array(4096 * h * 3), 4096, h, 448)).to.throw(
          new RegExp(`imagePixels: the decoded 4096×${h} image \\(${4096 * h * 3} bytes of RGB\\) exceeds this device's storage binding limit of ${limit} bytes \\(maxStorageBufferBindingSize\\)`));
        // Intermediate: a tall narrow image whose bytes fit but whose 448-wide rows (a word per pixel) do not.
        const tall = Math.floor(limit / (448 * 4)) + 1;
        const w = Math.floor(limit / (tall * 3));
        expect(w * tall * 3).to.be.at.most(limit);
        expect(() => gpu.imagePixels(new Uint8Array(w * tall * 3), w, tall, 448)).to.throw(
          new RegExp(`imagePixels: the ${w}×${tall} image's intermediate of 448×${tall} pixels \\(${448 * tall * 4} bytes\\) exceeds this device's storage binding limit of ${limit} bytes`));
      } finally {
        ctx.maxBinding = own;
      }
      await expectExact(gpu, pixels(31, 29, 13), 31, 29, 448);
    });

    it("is resize_bicubic dispatches and nothing else", async () => {
      const ran = new Set<string>();
      recordDispatches(gpu, ran);
      const t = gpu.imagePixels(pixels(40, 30, 14), 40, 30, 448);
      expect([...ran]).to.deep.equal(["resize_bicubic"]);
      gpu.release(t);
    });
  });
});
