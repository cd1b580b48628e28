// The matrix-unit GEMM path of the WebGPU backend: split_f16.wgsl (x → f16 hi + lo with a
// power-of-two row scale) on any adapter with shader-f16, the variants' padding and fit rules
// anywhere, and both matrix-unit kernels (dense_gemm_mma.wgsl, dense_gemm_mma8.wgsl) against the
// reference where the adapter offers f16 subgroup matrices (a real GPU; Mesa's lavapipe offers
// none, so there it reports the skip).
import { expect } from "chai";
import type { Backend, LinearWeights, Tensor } from "../src/ops/backend.js";
import { ReferenceBackend } from "../reference/backend.js";
import type { WebGpuBackend } from "../src/ops/webgpu/backend.js";
import { f16ToF32, f32ArrayToF16 } from "../src/io/fp16.js";
import { acquire, ctxOf, rand, recordDispatches } from "./webgpu-acquire.js";
import { relL2 } from "../src/conformance/compare.js";
import { loadShaders, SHADER_NAMES, withCommon } from "../src/ops/webgpu/device.js";
import { createBackend } from "../src/ops/select.js";
import {
  MMA_KERNELS, MMA_VARIANTS, mmaChunkRows, mmaKernelNamed, mmaWeightFits, releaseSplit, splitDims, splitOperand,
} from "../src/ops/webgpu/mma.js";
import { DENSE_GEMM_KERNELS } from "../src/ops/webgpu/linear.js";


/** The error createBackend({ name: "webgpu" }) throws with environment variable `name` set to `value` (restored after). */
async function webgpuErrorWith(name: string, value: string): Promise<string> {
  const before = process.env[name];
  process.env[name] = value;
  try {
    let err: Error | null = null;
    await createBackend({ name: "webgpu" }).catch((e: Error) => { err = e; });
    return String(err);
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

describe("QWENVL_GPU_MATRIX", () => {
  it("accepts on and off only, naming the variable", async () => {
    expect(await webgpuErrorWith("QWENVL_GPU_MATRIX", "maybe")).to.match(/QWENVL_GPU_MATRIX must be "on" or "off", got "maybe"/);
  });
});

describe("QWENVL_GPU_MMA_KERNEL", () => {
  it("accepts 1sg and 8sg only, naming the variable", async () => {
    expect(await webgpuErrorWith("QWENVL_GPU_MMA_KERNEL", "4sg")).to.match(/QWENVL_GPU_MMA_KERNEL must be one of "1sg", "8sg", got "4sg"/);
  });
});

describe("matrix-unit kernel variants: padding and fit follow the tile", () => {
  const one = MMA_KERNELS["1sg"], eight = MMA_KERNELS["8sg"];

  it("tiles, names, workgroup memory: 1sg 32 × 64 in 8 KiB, 8sg 128 × 128 in 44 KiB; DENSE_GEMM_KERNELS agrees", () => {
    expect([one.name, one.tile, one.workgroupSize, one.sharedBytes]).to.deep.equal(["dense_gemm_mma", { m: 32, n: 64, k: 16 }, 32, 8192]);
    expect([eight.name, eight.tile, eight.workgroupSize, eight.sharedBytes]).to.deep.equal(["dense_gemm_mma8", { m: 128, n: 128, k: 16 }, 256, 45056]);
    for (const v of MMA_VARIANTS) {
      const k = MMA_KERNELS[v];
      expect(mmaKernelNamed(k.name)).to.equal(k);
      expect(DENSE_GEMM_KERNELS[k.name]).to.deep.equal({ tile: [k.tile.m, k.tile.n], sharedBytes: k.sharedBytes });
    }
    expect(mmaKernelNamed("dense_gemm_128")).to.equal(undefined);
  });

  it("splitDims: A's rows to tile.m, B's to tile.n, columns to the k step", () => {
    expect(splitDims(one, "a", 33, 37)).to.deep.equal({ rp: 64, cp: 48 });
    expect(splitDims(eight, "a", 33, 37)).to.deep.equal({ rp: 128, cp: 48 });
    expect(splitDims(one, "a", 65, 16)).to.deep.equal({ rp: 96, cp: 16 });
    expect(splitDims(eight, "a", 65, 16)).to.deep.equal({ rp: 128, cp: 16 });
    expect(splitDims(eight, "a", 129, 16)).to.deep.equal({ rp: 256, cp: 16 });
    expect(splitDims(one, "b", 130, 104)).to.deep.equal({ rp: 192, cp: 112 });
    expect(splitDims(eight, "b", 130, 104)).to.deep.equal({ rp: 256, cp: 112 });
    expect(splitDims(eight, "b", 128, 128)).to.deep.equal({ rp: 128, cp: 128 });
  });

  it("mmaWeightFits: K % 16 and weight chunks of whole tile.n rows", () => {
    expect(mmaWeightFits(one, 1664, [1664])).to.equal(true); // 1664 = 13 · 128
    expect(mmaWeightFits(eight, 1664, [1664])).to.equal(true);
    expect(mmaWeightFits(one, 48, [64, 64, 192])).to.equal(true);
    expect(mmaWeightFits(eight, 48, [64, 64, 192])).to.equal(false);
    expect(mmaWeightFits(eight, 48, [128, 256])).to.equal(true);
    expect(mmaWeightFits(one, 40, [64])).to.equal(false);
    expect(mmaWeightFits(eight, 40, [128])).to.equal(false);
  });

  it("mmaChunkRows: whole 128-row tiles (both variants) where a chunk holds one, 64 rows else, as is below", () => {
    expect(mmaChunkRows(1000)).to.equal(896);
    expect(mmaChunkRows(256)).to.equal(256);
    expect(mmaChunkRows(200)).to.equal(128);
    expect(mmaChunkRows(127)).to.equal(64);
    expect(mmaChunkRows(63)).to.equal(63);
    for (const per of [128, 640, 1000, 4096 + 77]) {
      for (const v of MMA_VARIANTS) expect(mmaChunkRows(per) % MMA_KERNELS[v].tile.n, `${per} rows, ${v}`).to.equal(0);
    }
  });
});

describe("shader assembly", () => {
  it("a shader's enable and diagnostic directives go before common.wgsl (WGSL wants directives first)", () => {
    const code = "// x\nenable f16;\ndiagnostic(off, derivative_uniformity);\nfn main() {}\n";
    expect(withCommon("fn shared() {}", code)).to.equal("enable f16;\ndiagnostic(off, derivative_uniformity);\nfn shared() {}\n// x\nfn main() {}\n");
  });

  it("mma_common.wgsl goes in front of the two matrix-unit GEMMs only, after common.wgsl and their directives", async () => {
    const shaders = await loadShaders();
    expect([...shaders.keys()].sort()).to.deep.equal([...SHADER_NAMES].sort());
    for (const [name, code] of shaders) {
      const mma = name === "dense_gemm_mma" || name === "dense_gemm_mma8";
      expect(code.includes("fn write_out("), name).to.equal(mma);
      if (!mma) continue;
      expect(code.startsWith("enable f16;\nenable chromium_experimental_subgroup_matrix;\n"), name).to.equal(true);
      const common = code.indexOf("fn f16_to_f32("); // common.wgsl, then mma_common.wgsl, then the shader
      expect(common, name).to.be.greaterThan(0);
      expect(code.indexOf("struct Params"), name).to.be.greaterThan(common);
      expect(code.indexOf("fn main("), name).to.be.greaterThan(code.indexOf("fn write_out("));
      expect(code.match(/struct Params/g)?.length, name).to.equal(1); // declared once, in mma_common
      // dense_gemm_mma8 also binds B as f16 scalars (binding 7: mma.ts's bViewF16).
      const bindings = mmaKernelNamed(name)?.bViewF16 ? [0, 1, 2, 3, 4, 5, 6, 7] : [0, 1, 2, 3, 4, 5, 6];
      expect(code.match(/@binding\((\d)\)/g)?.sort(), name).to.deep.equal(bindings.map((b) => `@binding(${b})`));
    }
  });
});

describe("webgpu matrix-unit GEMM (split_f16, dense_gemm_mma, dense_gemm_mma8)", function () {
  this.timeout(120_000);
  let gpu: WebGpuBackend;
  before(async function () {
    gpu = await acquire(this);
  });
  after(async () => {
    await gpu?.dispose();
  });

  it("split_f16: hi + lo = x·s to 2^-22 of the row maximum, s a power of two putting it in [2^14, 2^15); zero, padded, non-finite rows; batched, transposed views", async function () {
    if (!gpu.report.features.includes("shader-f16")) {
      console.log("    (skipping: the adapter has no shader-f16)");
      this.skip();
    }
    const ctx = ctxOf(gpu);
    const K = 37, M = 7, B = 2;
    // Batch b, row r, column c at b·M·K + c·M + r: each batch stored transposed (cs = M, rs = 1).
    const x = new Float32Array(3 + B * M * K);
    const at = (b: number, r: number, c: number): number => 3 + b * M * K + c * M + r;
    const v = rand(B * M * K, 3, -3, 3);
    for (let b = 0; b < B; b++) for (let r = 0; r < M; r++) for (let c = 0; c < K; c++) x[at(b, r, c)] = v[(b * M + r) * K + c];
    const set = (b: number, r: number, f: (c: number) => number): void => { for (let c = 0; c < K; c++) x[at(b, r, c)] = f(c); };
    set(0, 1, () => 0);
    const tiny = rand(K, 4, -1e-30, 1e-30), huge = rand(K, 5, -1e30, 1e30);
    set(0, 2, (c) => tiny[c]);
    set(1, 3, (c) => (c === 0 ? 0 : c === 1 ? 1e24 : huge[c])); // zeros and values 2^17 below the maximum (lo subnormal)
    x[at(0, 5, 9)] = NaN;
    x[at(1, 6, 36)] = -Infinity;
    const xb = ctx.upload(x);
    const s = splitOperand(ctx, MMA_KERNELS["1sg"], "a", xb, 3, B, M, K, { bs: M * K, rs: 1, cs: M });
    const { rp, cp } = s;
    expect([rp, cp]).to.deep.equal([32, 48]);
    const h = new Uint16Array((await ctx.read(s.hl, 0, B * rp * cp)).buffer);
    const r = await ctx.read(s.sc, 0, B * rp);
    for (let b = 0; b < B; b++) {
      for (let m = 0; m < rp; m++) {
        const base = b * 2 * rp * cp + m * cp;
        const hiLo = (k: number): number => f16ToF32(h[base + k]) + f16ToF32(h[base + rp * cp + k]);
        const what = `batch ${b}, row ${m}`;
        for (let k = K; k < cp; k++) expect(hiLo(k), `${what}, padding column ${k}`).to.equal(0);
        if (m >= M || (b === 0 && m === 1)) {
          expect(r[b * rp + m], what).to.equal(1);
          for (let k = 0; k < K; k++) expect(hiLo(k), what).to.equal(0);
          continue;
        }
        if ((b === 0 && m === 5) || (b === 1 && m === 6)) {
          expect(r[b * rp + m], `${what} holds NaN or -Inf`).to.be.NaN;
          continue;
        }
        const sc = 1 / r[b * rp + m];
        expect(Math.log2(sc) % 1, `${what}: s is a power of two`).to.equal(0);
        const xs = Array.from({ length: K }, (_, k) => x[at(b, m, k)] * sc);
        const amax = Math.max(...xs.map(Math.abs));
        expect(amax, what).to.be.at.least(2 ** 14).and.below(2 ** 15);
        for (let k = 0; k < K; k++) expect(Math.abs(hiLo(k) - xs[k]), `${what}, k ${k}`).to.be.at.most(2 ** -22 * amax);
      }
    }
    ctx.give(xb);
    releaseSplit(ctx, s);
  });

  for (const variant of MMA_VARIANTS) {
    const kernel = MMA_KERNELS[variant];
    describe(`${kernel.name} (${variant}) against the reference`, () => {
      let mma: WebGpuBackend;
      let chunked: WebGpuBackend;
      const ref = new ReferenceBackend();
      const ran = new Set<string>();
      before(async function () {
        if (!gpu.report.matrixF16) {
          console.log(`    (skipping ${kernel.name}: this adapter has no f16 subgroup matrices with 32-wide subgroups; configurations: ${gpu.report.matrixConfigs.join(", ") || "none"})`);
          this.skip();
        }
        mma = await acquire(this, { denseGemm: kernel.name, mmaKernel: variant });
        if (mma.report.mmaKernel !== variant) {
          console.log(`    (skipping ${kernel.name}: ${mma.report.mmaNote})`);
          this.skip();
        }
        // tile.n rows of a K = 48 f16 weight per chunk (linear.ts keeps 4 bytes of a chunk spare).
        chunked = await acquire(this, { denseGemm: kernel.name, mmaKernel: variant, weightChunkBytes: kernel.tile.n * 48 * 2 + 4 });
        for (const be of [mma, chunked]) recordDispatches(be, ran);
      });
      after(async () => {
        await mma?.dispose();
        await chunked?.dispose();
      });

      async function same(x: Float32Array, M: number, w: LinearWeights, be: Backend): Promise<number> {
        const op = (b: Backend, t: Tensor): Tensor => b.matmul(t, b.linear(w));
        const want = await ref.read(op(ref, ref.fromHost(x, [M, w.inFeatures])));
        const got = await be.read(op(be, be.fromHost(x, [M, w.inFeatures])));
        return relL2(got, want);
      }

      // Partial row tiles (M = 2, 33, 130), K of one and of many 16-steps, N of one and several
      // column tiles (and N = 64, half an 8sg tile), chunks of tile.n rows of W (K = 48: a 6 or
      // 12 KiB binding limit), no bias.
      for (const [M, K, N, bias] of [[2, 16, 64, true], [33, 48, 384, true], [130, 256, 128, false], [1024, 1664, 128, true]] as const) {
        const fits = N % kernel.tile.n === 0;
        it(`M=${M} K=${K} N=${N}${bias ? " with bias" : ""}: ${fits ? "rel L2 ≤ 1e-6 (the split's 2^-22 and f32 sums)" : `N not whole ${kernel.tile.n}-column tiles: refused when forced`}`, async () => {
          ran.clear();
          const w: LinearWeights = {
            kind: "dense", inFeatures: K, outFeatures: N, dtype: "f16",
            weight: f32ArrayToF16(rand(K * N, K + N, -0.05, 0.05)), bias: bias ? rand(N, 9) : undefined,
          };
          const be = K === 48 ? chunked : mma;
          if (!fits) {
            let err: Error | null = null;
            try { await same(rand(M * K, M + 1, -4, 4), M, w, be); } catch (e) { err = e as Error; }
            expect(String(err)).to.match(new RegExp(`${kernel.name} cannot run ${K}→${N}`));
            return;
          }
          const e = await same(rand(M * K, M + 1, -4, 4), M, w, be);
          expect(e, `rel L2 ${e}`).to.be.at.most(1e-6);
          expect([...ran].sort()).to.deep.equal([kernel.name, "split_f16"]);
        });
      }

      // Attention takes the matrix units whenever the device has them and a step has more than a
      // few queries: bidirectional (the ViT: head dim 104, not a multiple of 16), causal with a
      // query offset (prefill after a cached prefix), keys not a multiple of 64.
      for (const [Tq, Tk, H, D, causal, off] of [[130, 130, 3, 104, false, 0], [37, 300, 2, 128, true, 263], [64, 64, 16, 104, false, 0]] as const) {
        it(`attention Tq=${Tq} Tk=${Tk} H=${H} D=${D}${causal ? ` causal from ${off}` : ""}: rel L2 ≤ 5e-6`, async () => {
          ran.clear();
          const q = rand(Tq * H * D, 1, -2, 2), k = rand(Tk * H * D, 2, -2, 2), v = rand(Tk * H * D, 3, -2, 2);
          const op = (b: Backend): Tensor => b.attention(b.fromHost(q, [Tq, H, D]), b.fromHost(k, [Tk, H, D]), b.fromHost(v, [Tk, H, D]),
            { scale: 1 / Math.sqrt(D), causal, queryOffset: off });
          const want = await ref.read(op(ref));
          const got = await mma.read(op(mma));
          const e = relL2(got, want);
          // Two splits and the matrix units' accumulation: 1.2e-6 and 1.6e-6 measured on an H200
          // for the first two cases with dense_gemm_mma (the FMA kernels: below 1e-6).
          expect(e, `rel L2 ${e}`).to.be.at.most(5e-6);
          expect([...ran].sort()).to.deep.equal(["att_softmax", kernel.name, "split_f16"]);
        });
      }
    });
  }
});
