// The WebGPU backend against the reference backend: every op on random inputs of awkward sizes,
// the weight splits (a small binding limit forces them), the deferred finite checks, one submit
// per read (the tiny-a conformance goldens: webgpu-goldens.test.ts). Runs on whatever adapter Dawn
// finds (CI: Mesa's lavapipe, installed by .ci/run); without one it skips locally and FAILS under CI=true.
import { expect } from "chai";
import { addRmsNorm, ropeWriteKv, swigluMatmul, type Backend, type GptqWeights, type LinearWeights, type Tensor } from "../src/ops/backend.js";
import { ReferenceBackend } from "../reference/backend.js";
import type { WebGpuBackend } from "../src/ops/webgpu/backend.js";
import { acquire, ctxOf, rand, recordDispatches } from "./webgpu-acquire.js";
import { f32ArrayToBf16, f32ArrayToF16, f32ToF16 } from "../src/io/fp16.js";
import { BindGroupCache, layoutEntries } from "../src/ops/webgpu/bindgroups.js";
import { DENSE_GEMM_KERNELS, denseGemmKernel } from "../src/ops/webgpu/linear.js";
import { mmaKernelNamed } from "../src/ops/webgpu/mma.js";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";


function relL2(got: Float32Array, want: Float32Array): number {
  expect(got.length).to.equal(want.length);
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

const ref = new ReferenceBackend();

describe("webgpu backend vs the reference backend", function () {
  this.timeout(120_000);
  let gpu: WebGpuBackend;
  let split: WebGpuBackend; // one storage binding limited to 4 KiB: every weight here is split

  before(async function () {
    gpu = await acquire(this);
    split = await acquire(this, { weightChunkBytes: 4096 });
    console.log(`    adapter: ${gpu.name}`);
  });
  after(async () => {
    await gpu?.dispose();
    await split?.dispose();
  });

  /** Run `op` on both backends over host inputs and compare the outputs (rel L2 ≤ tol). */
  async function same(
    inputs: Array<[Float32Array, number[]]>,
    op: (be: Backend, xs: Tensor[]) => Tensor,
    tol = 1e-6,
    be: Backend = gpu,
  ): Promise<number> {
    const want = await ref.read(op(ref, inputs.map(([d, s]) => ref.fromHost(d, s))));
    const got = await be.read(op(be, inputs.map(([d, s]) => be.fromHost(d, s))));
    const e = relL2(got, want);
    expect(e, `rel L2 ${e}`).to.be.at.most(tol);
    return e;
  }

  function dense(K: number, N: number, dtype: "f32" | "f16" | "bf16", bias: boolean, seed: number): LinearWeights {
    const w = rand(K * N, seed);
    const weight = dtype === "f32" ? w : dtype === "f16" ? f32ArrayToF16(w) : f32ArrayToBf16(w);
    return { kind: "dense", inFeatures: K, outFeatures: N, weight, dtype, bias: bias ? rand(N, seed + 1) : undefined };
  }

  function gptq(K: number, N: number, actOrder: boolean, bias: boolean, seed: number, gs = 128): GptqWeights {
    const G = K / gs;
    const words = rand((K / 8) * N + G * (N / 8), seed, 0, 2 ** 32);
    const qweight = Int32Array.from(words.subarray(0, (K / 8) * N), (v) => v | 0);
    const qzeros = Int32Array.from(words.subarray((K / 8) * N), (v) => v | 0);
    const scales = Uint16Array.from(rand(G * N, seed + 2, 0.001, 0.02), (v) => f32ToF16(v));
    const gIdx = Int32Array.from({ length: K }, (_, k) => Math.floor(k / gs));
    if (actOrder) {
      const order = rand(K, seed + 3);
      const perm = Array.from({ length: K }, (_, k) => k).sort((a, b) => order[a] - order[b]);
      for (let k = 0; k < K; k++) gIdx[k] = Math.floor(perm[k] / gs);
    }
    return { kind: "gptq", inFeatures: K, outFeatures: N, bits: 4, groupSize: gs, qweight, qzeros, scales, gIdx, bias: bias ? rand(N, seed + 4) : undefined };
  }

  for (const dtype of ["f32", "f16", "bf16"] as const) {
    for (const [M, K, N] of [[1, 37, 29], [5, 130, 67], [67, 19, 131], [70, 100, 69]]) {
      it(`dense ${dtype} matmul M=${M} K=${K} N=${N}, with bias, whole and split over bindings`, async () => {
        const w = dense(K, N, dtype, true, M + K + N);
        const x = rand(M * K, 7);
        await same([[x, [M, K]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6);
        await same([[x, [M, K]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6, split);
      });
    }
  }

  // Each M > 1 GEMM kernel, forced (the default picks one by shape): partial tiles in M and N,
  // K below, at and off its K step of 8 or 16 (K = 7, 8, 19, 33, 64, 101), odd K (16-bit rows that straddle words), no bias,
  // and the 4 KiB split (chunks of a few rows: the n0 offsets). The dispatches are recorded to
  // show that the forced kernel ran.
  // (dense_gemm_mma and dense_gemm_mma4 take other shapes and need matrix units: webgpu-mma.test.ts.)
  for (const kernel of (Object.keys(DENSE_GEMM_KERNELS) as Array<keyof typeof DENSE_GEMM_KERNELS>).filter((k) => !mmaKernelNamed(k))) {
    describe(`forced ${kernel}`, () => {
      let whole: WebGpuBackend;
      let chunked: WebGpuBackend;
      const ran = new Set<string>();
      before(async function () {
        whole = await acquire(this, { denseGemm: kernel });
        chunked = await acquire(this, { denseGemm: kernel, weightChunkBytes: 4096 });
        const offered = ctxOf(whole).maxWorkgroupStorage;
        if (DENSE_GEMM_KERNELS[kernel].sharedBytes > offered) {
          console.log(`    (skipping ${kernel}: it needs ${DENSE_GEMM_KERNELS[kernel].sharedBytes} bytes of workgroup memory, the adapter offers ${offered})`);
          this.skip();
        }
        for (const be of [whole, chunked]) recordDispatches(be, ran);
      });
      after(async () => {
        await whole?.dispose();
        await chunked?.dispose();
      });
      for (const [M, K, N, dtype, bias] of [[2, 7, 3, "f32", true], [130, 19, 131, "f16", true], [129, 8, 200, "bf16", false],
        [257, 33, 67, "f32", false], [64, 101, 129, "f16", false], [131, 64, 64, "bf16", true]] as const) {
        it(`dense ${dtype} M=${M} K=${K} N=${N}${bias ? " with bias" : ""}, whole and split`, async () => {
          ran.clear();
          const w = dense(K, N, dtype, bias, M * 3 + K + N);
          const x = rand(M * K, 13 + K);
          await same([[x, [M, K]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6, whole);
          await same([[x, [M, K]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6, chunked);
          expect([...ran]).to.deep.equal([kernel]);
        });
      }
      it("a matmul of a row view at an offset (x_off > 0)", async () => {
        ran.clear();
        const w = dense(45, 70, "f16", true, 5);
        const x = rand(3 * 133 * 45, 17);
        // Rows 133..265 of a [399, 45] tensor: x starts at element 133·45 of its buffer.
        await same([[x, [399, 45]]], (be, [t]) => be.matmul(be.sliceRows(t, 133, 266), be.linear(w)), 1e-6, whole);
        expect([...ran]).to.include(kernel);
      });
    });
  }

  it("the default dense GEMM: dense_gemm up to 64 rows, dense_gemm_128 above (the H200 measurement, linear.ts)", async () => {
    const ctx = ctxOf(gpu);
    const ran: string[] = [];
    const dispatch = ctx.dispatch;
    ctx.dispatch = (name, ...rest) => {
      ran.push(name);
      dispatch.call(ctx, name, ...rest);
    };
    try {
      const w = dense(40, 30, "f16", true, 9);
      for (const M of [64, 65]) {
        const x = rand(M * 40, M);
        await same([[x, [M, 40]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6);
      }
    } finally {
      ctx.dispatch = dispatch;
    }
    expect(ran).to.deep.equal(["dense_gemm", "dense_gemm_128"]);
    expect(denseGemmKernel(2)).to.equal("dense_gemm");
    expect(denseGemmKernel(1024)).to.equal("dense_gemm_128");
  });

  // M = 1 with rows of whole 16-byte words takes dense_gemv4 (vec4 loads, x staged 2048 values at
  // a time): K = 2056 has a second, partial tile of x; K = 1016 fits the 4 KiB split (f32: one row per chunk).
  for (const dtype of ["f32", "f16", "bf16"] as const) {
    it(`dense ${dtype} matmul M=1, rows of whole 16-byte words (K=2056 and K=1016, N=37), whole and split`, async () => {
      const x = rand(2056, 5);
      await same([[x, [1, 2056]]], (be, [t]) => be.matmul(t, be.linear(dense(2056, 37, dtype, true, 3))), 1e-6);
      const w = dense(1016, 37, dtype, true, 4);
      await same([[x.subarray(0, 1016), [1, 1016]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6);
      await same([[x.subarray(0, 1016), [1, 1016]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6, split);
    });
  }

  // K = 4224 is 528 packed rows: a second, partial tile of gptq_gemv's 512; N = 40 and 24 leave
  // the last workgroup of 32 columns partly empty.
  for (const [M, K, N, actOrder] of [[1, 256, 40, false], [1, 384, 200, true], [1, 4224, 40, false], [1, 4224, 24, true],
    [3, 256, 72, true], [9, 128, 24, false]] as const) {
    it(`GPTQ int4 matmul M=${M} K=${K} N=${N}${actOrder ? " act-order g_idx" : ""}, whole and split`, async () => {
      const w = gptq(K, N, actOrder, M !== 9, M * 31 + N);
      const x = rand(M * K, 11);
      const e = await same([[x, [M, K]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6);
      await same([[x, [M, K]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6, split);
      expect(e).to.be.below(1e-6);
    });
  }

  it("GPTQ int4 matmul M=1 with groups of 64 and 8 (a group changes within a K-split's run of rows)", async () => {
    for (const gs of [64, 8]) {
      const w = gptq(1024, 48, false, true, 21 + gs, gs);
      await same([[rand(1024, 13), [1, 1024]]], (be, [t]) => be.matmul(t, be.linear(w)), 1e-6);
    }
  });

  it("layerNorm and rmsNorm over odd widths (4133: rms_norm's four loads per iteration, then the rest)", async () => {
    for (const [R, D] of [[3, 37], [2, 300], [1, 1], [2, 4133]]) {
      const inputs: Array<[Float32Array, number[]]> = [[rand(R * D, R, -3, 5), [R, D]], [rand(D, 2), [D]], [rand(D, 3), [D]]];
      await same(inputs, (be, [x, w, b]) => be.layerNorm(x, w, b, 1e-6), 1e-6);
      await same(inputs, (be, [x, w]) => be.rmsNorm(x, w, 1e-6), 1e-6);
    }
  });

  it("addRmsNorm: the sum and its norm as add + rmsNorm (reference within 1e-6, the GPU's own two ops bit for bit)", async () => {
    // Rows wider than a workgroup (300, 4096: several values per thread), one row (decode), offsets (views).
    for (const [R, D] of [[3, 37], [2, 300], [1, 4096], [1, 1]]) {
      const inputs: Array<[Float32Array, number[]]> = [[rand(R * D, R, -3, 5), [R, D]], [rand(R * D + 5, 7), [R * D + 5]], [rand(D, 3), [D]]];
      const b = (be: Backend, t: Tensor): Tensor => be.sliceRows(t, 5, R * D).reshape([R, D]);
      await same(inputs, (be, [x, y, w]) => addRmsNorm(be, x, b(be, y), w, 1e-6, "t").normed, 1e-6);
      await same(inputs, (be, [x, y, w]) => addRmsNorm(be, x, b(be, y), w, 1e-6, "t").sum, 1e-7);
      const [x, y, w] = inputs.map(([d, sh]) => gpu.fromHost(d, sh));
      const fused = gpu.addRmsNorm(x, b(gpu, y), w, 1e-6, "t");
      const sum = gpu.add(x, b(gpu, y));
      expect(await gpu.read(fused.sum)).to.deep.equal(await gpu.read(sum));
      expect(await gpu.read(fused.normed)).to.deep.equal(await gpu.read(gpu.rmsNorm(sum, w, 1e-6)));
    }
  });

  it("addRmsNorm checks its sum as checkFinite does: the earliest failing check is reported", async () => {
    const a = new Float32Array(300);
    a[200] = -Infinity;
    const [x, y, w] = [gpu.fromHost(a, [1, 300]), gpu.fromHost(new Float32Array(300), [1, 300]), gpu.fromHost(new Float32Array(300).fill(1), [300])];
    gpu.addRmsNorm(y, y, w, 1e-6, "fine sum");
    gpu.addRmsNorm(x, y, w, 1e-6, "transformer.h.3 attention output");
    gpu.checkFinite(x, "later check");
    let msg = "";
    await gpu.read(w).catch((e: Error) => (msg = e.message));
    expect(msg).to.equal("transformer.h.3 attention output contains -Inf");
    expect(Array.from(await gpu.read(w)).every((v) => v === 1)).to.equal(true);
  });

  // The gate applied while the GEMV stages x (gptq_gemv; dense_gemv4 for rows of whole 16-byte
  // words) and the fallbacks (dense K = 37: dense_gemv; M = 3: the GEMMs): against the reference,
  // and bit for bit against the GPU's own swiglu + matmul. ab sits at an offset (a row view of a
  // larger tensor), as the model's a12 does not, so that the x offset is exercised too.
  // A row of the f16 K = 2056 layer (4112 bytes) exceeds the 4 KiB split: that case runs whole only.
  const swigluCases: Array<readonly [string, number, () => LinearWeights, boolean]> = [
    ["GPTQ K=4224 N=40 (a second, partial x tile)", 1, () => gptq(4224, 40, false, true, 5), true],
    ["GPTQ act-order K=384 N=200", 1, () => gptq(384, 200, true, false, 6), true],
    ["GPTQ K=256 N=72, M=3 (fallback)", 3, () => gptq(256, 72, false, true, 7), true],
    ["dense f16 K=2056 N=37 (dense_gemv4, two x tiles)", 1, () => dense(2056, 37, "f16", true, 8), false],
    ["dense f16 K=1016 N=37", 1, () => dense(1016, 37, "f16", true, 11), true],
    ["dense f32 K=1016 N=29", 1, () => dense(1016, 29, "f32", false, 9), true],
    ["dense bf16 K=37 N=13 (dense_gemv, fallback)", 1, () => dense(37, 13, "bf16", true, 10), true],
  ];
  for (const [what, M, make, splitToo] of swigluCases) {
    it(`swigluMatmul ${what}: matmul(swiglu(a, b), w)${splitToo ? ", whole and split" : ""}`, async () => {
      const w = make();
      const F = w.inFeatures;
      // a in [-4, 4], b in [-30, 30]: silu's saturated tails on both sides.
      const data = rand(M * 2 * F + 3, F, -4, 4);
      for (let i = 3; i < data.length; i++) if ((i - 3) % (2 * F) >= F) data[i] *= 7.5;
      const ab = (be: Backend, t: Tensor): Tensor => be.sliceColumns(t.reshape([1, M * 2 * F + 3]), 3, M * 2 * F).reshape([M, 2 * F]);
      for (const be of splitToo ? [gpu, split] : [gpu]) {
        await same([[data, [M * 2 * F + 3]]], (b, [t]) => swigluMatmul(b, ab(b, t), b.linear(w)), 1e-6, be);
        const lin = be.linear(w);
        const x = ab(be, be.fromHost(data, [M * 2 * F + 3]));
        const fused = await be.read(be.swigluMatmul(x, lin));
        const gated = be.swiglu(be.sliceColumns(x, 0, F), be.sliceColumns(x, F, F));
        expect(Array.from(fused)).to.deep.equal(Array.from(await be.read(be.matmul(gated, lin))));
      }
    });
  }

  it("swigluMatmul rejects an input that is not two halves of the layer's width", () => {
    const lin = gpu.linear(gptq(128, 16, false, false, 3));
    expect(() => gpu.swigluMatmul(gpu.fromHost(rand(255, 1), [1, 255]), lin)).to.throw(/must be \[T, 2·128\]/);
    expect(() => swigluMatmul(ref, ref.fromHost(rand(128, 1), [1, 128]), ref.linear(gptq(128, 16, false, false, 3)))).to.throw(/must be \[T, 2·128\]/);
  });

  // One decode row (v a view of a qkv row, as in the model) and a prefill of 3 rows at start 2 of
  // a [2, 7, H, D] cache, D = 10 (not a multiple of 4): the rotated [q | k] and the whole cache.
  for (const [T, start] of [[1, 5], [3, 2]]) {
    it(`ropeWriteKv T=${T} at row ${start}: rope(qk), and k, v into the cache as rope + writeRows`, async () => {
      const [H, D, cap] = [3, 10, 7];
      const inputs: Array<[Float32Array, number[]]> = [
        [rand(T * 3 * H * D, T, -2, 2), [T, 3 * H * D]], [rand(T * D, 2), [T, D]], [rand(T * D, 3), [T, D]],
        [rand(2 * cap * H * D, 4), [2, cap, H, D]],
      ];
      const run = (be: Backend, [qkv, c, s, init]: Tensor[], fused: boolean): Tensor[] => {
        const cache = be.add(init, be.zeros(init.shape)); // a fresh cache holding values to keep
        const kc = be.sliceRows(cache, 0, 1).reshape([cap, H, D]), vc = be.sliceRows(cache, 1, 1).reshape([cap, H, D]);
        const qk = be.sliceColumns(qkv, 0, 2 * H * D).reshape([T, 2 * H, D]);
        const v = be.sliceColumns(qkv, 2 * H * D, H * D).reshape([T, H, D]);
        if (fused) return [ropeWriteKv(be, qk, c, s, v, kc, vc, start), cache];
        const out = be.rope(qk, c, s);
        be.writeRows(kc, start, be.sliceColumns(out.reshape([T, 2 * H * D]), H * D, H * D).reshape([T, H, D]));
        be.writeRows(vc, start, v);
        return [out, cache];
      };
      for (const part of [0, 1]) await same(inputs, (be, ts) => run(be, ts, true)[part], 1e-6);
      const ts = inputs.map(([d, sh]) => gpu.fromHost(d, sh));
      const before = gpu.counters.dispatches;
      const [out, cache] = run(gpu, ts, true);
      // add, zeros' clear (not counted), two column views (T = 1) or copies, then one rope_kv
      expect(gpu.counters.dispatches - before).to.equal(T === 1 ? 2 : 4);
      const [out2, cache2] = run(gpu, ts, false);
      expect(Array.from(await gpu.read(out))).to.deep.equal(Array.from(await gpu.read(out2)));
      expect(Array.from(await gpu.read(cache))).to.deep.equal(Array.from(await gpu.read(cache2)));
    });
  }

  it("ropeWriteKv with keys and values in separate buffers (the separate ops), and its shape checks", async () => {
    const [T, H, D] = [2, 2, 6];
    const inputs: Array<[Float32Array, number[]]> = [[rand(T * 2 * H * D, 1), [T, 2 * H, D]], [rand(T * D, 2), [T, D]], [rand(T * D, 3), [T, D]], [rand(T * H * D, 4), [T, H, D]]];
    for (const part of ["out", "k", "v"] as const) {
      await same(inputs, (be, [qk, c, s, v]) => {
        const kc = be.zeros([4, H, D]), vc = be.zeros([4, H, D]);
        const out = ropeWriteKv(be, qk, c, s, v, kc, vc, 1);
        return part === "out" ? out : part === "k" ? kc : vc;
      }, 1e-6);
    }
    const [qk, c, s, v] = inputs.map(([d, sh]) => gpu.fromHost(d, sh));
    const cache = gpu.zeros([2, 4, H, D]);
    const kc = gpu.sliceRows(cache, 0, 1).reshape([4, H, D]), vc = gpu.sliceRows(cache, 1, 1).reshape([4, H, D]);
    expect(() => gpu.ropeWriteKv(qk, c, s, v, kc, vc, 3)).to.throw(/rows 3..4 are outside/);
    expect(() => gpu.ropeWriteKv(qk, c, s, qk, kc, vc, 0)).to.throw(/ropeWriteKv: v \[2,4,6\] does not match/);
  });

  it("add (same shape and row broadcast), scaleRows, swiglu", async () => {
    await same([[rand(3 * 37, 1), [3, 37]], [rand(3 * 37, 2), [3, 37]]], (be, [a, b]) => be.add(a, b), 1e-7);
    await same([[rand(3 * 37, 1), [3, 37]], [rand(37, 2), [37]]], (be, [a, b]) => be.add(a, b), 1e-7);
    await same([[rand(5 * 13, 3), [5, 13]], [rand(5, 4), [5]]], (be, [a, s]) => be.scaleRows(a, s), 1e-7);
    await same([[rand(1001, 5, -4, 4), [1001]], [rand(1001, 6, -30, 30), [1001]]], (be, [a, b]) => be.swiglu(a, b), 1e-6);
  });

  it("gelu: exact-erf GELU within 5e-6 relative per element on [-5, 10], 1e-6 absolute on [-10, 10]", async () => {
    const n = 20001;
    const x = Float32Array.from({ length: n }, (_, i) => -10 + (20 * i) / (n - 1));
    const want = await ref.read(ref.gelu(ref.fromHost(x, [n])));
    const got = await gpu.read(gpu.gelu(gpu.fromHost(x, [n])));
    // Below x ≈ −5 the oracle itself loses relative accuracy: it forms 1 + erf(x/√2) in f64, a
    // difference of ~1e-7 and less (−0 from x ≈ −8.3 on), while the shader uses erfc directly.
    let maxRel = 0, maxAbs = 0;
    for (let i = 0; i < n; i++) {
      const d = Math.abs(got[i] - want[i]);
      maxAbs = Math.max(maxAbs, d);
      if (x[i] >= -5 && want[i] !== 0) maxRel = Math.max(maxRel, d / Math.abs(want[i]));
    }
    console.log(`    gelu: max abs error ${maxAbs.toExponential(2)} on [-10, 10], max rel error ${maxRel.toExponential(2)} on [-5, 10]`);
    expect(maxAbs).to.be.below(1e-6);
    expect(maxRel).to.be.below(5e-6);
  });

  it("rope over [T, H, D] with D not a multiple of 4", async () => {
    const [T, H, D] = [5, 3, 10];
    await same([[rand(T * H * D, 1), [T, H, D]], [rand(T * D, 2), [T, D]], [rand(T * D, 3), [T, D]]],
      (be, [x, c, s]) => be.rope(x, c, s), 1e-6);
  });

  it("attention: bidirectional, causal with queryOffset, decode over a KV cache view", async () => {
    // Tq ≤ 4: att_split over blocks of 32 keys (Tk = 77: a partial third block; causal rows whose
    // last blocks are empty); Tq > 4 with D ≤ 128: att_flash over tiles of 32 queries and 32 keys
    // (Tq = 70, Tk = 77: partial tiles; D = 104 as the ViT's heads); D = 136 > 128: the
    // three-pass att_scores / att_softmax / att_pv; D = 264 > 256 with Tq = 1 likewise. Tk = 4200 is
    // 132 key blocks, more than att_combine's 128 at a time; D = 200 gives its invocations two dims.
    const cases: Array<readonly [number, number, number, number, boolean, number]> = [
      [5, 9, 3, 10, false, 0], [7, 7, 3, 10, true, 0], [3, 7, 3, 10, true, 4], [1, 11, 3, 10, true, 10],
      [1, 77, 2, 104, true, 76], [3, 77, 2, 104, true, 40], [2, 77, 3, 10, false, 0],
      [70, 77, 2, 104, false, 0], [70, 77, 2, 104, true, 7], [33, 33, 3, 128, true, 0], [40, 45, 1, 9, false, 0],
      [6, 9, 2, 136, true, 3], [1, 9, 1, 264, false, 0], [1, 4200, 1, 8, true, 4199], [2, 40, 2, 200, false, 0],
    ];
    for (const [Tq, Tk, H, D, causal, queryOffset] of cases) {
      await same([[rand(Tq * H * D, Tq, -2, 2), [Tq, H, D]], [rand(Tk * H * D, Tk, -2, 2), [Tk, H, D]], [rand(Tk * H * D, 9), [Tk, H, D]]],
        (be, [q, k, v]) => be.attention(q, k, v, { scale: 1 / Math.sqrt(D), causal, queryOffset }), 1e-6);
    }
    const [H, D] = [3, 10];
    // Decode Tq = 1 over the first 6 rows of a 16-row cache filled by writeRows, read through sliceRows.
    await same([[rand(H * D, 1), [1, H, D]], [rand(6 * H * D, 2), [6, H, D]], [rand(6 * H * D, 3), [6, H, D]]], (be, [q, k, v]) => {
      const cache = be.zeros([2, 16, H, D], { longLived: true });
      const kc = be.sliceRows(cache, 0, 1).reshape([16, H, D]);
      const vc = be.sliceRows(cache, 1, 1).reshape([16, H, D]);
      be.writeRows(kc, 0, k);
      be.writeRows(vc, 0, v);
      return be.attention(q, be.sliceRows(kc, 0, 6), be.sliceRows(vc, 0, 6), { scale: 0.3, causal: true, queryOffset: 5 });
    }, 1e-6);
  });

  it("gather from f32/f16/bf16 tables (whole and split by rows), subnormals and infinities exact", async () => {
    const [R, C] = [23, 7];
    const v = rand(R * C, 5, -2, 2);
    v[3] = 3e-6; v[4] = -1e-7; v[5] = Infinity; v[6] = -0; // f16 subnormals, Inf, −0
    for (const dtype of ["f32", "f16", "bf16"] as const) {
      const data = dtype === "f32" ? v : dtype === "f16" ? f32ArrayToF16(v) : f32ArrayToBf16(v);
      const ids = [0, 22, 5, 5, 11, 0];
      for (const be of [gpu, split]) {
        const want = await ref.read(ref.gather(ref.embedding({ rows: R, cols: C, dtype, data }), ids));
        const got = await be.read(be.gather(be.embedding({ rows: R, cols: C, dtype, data }), ids));
        expect(Array.from(got)).to.deep.equal(Array.from(want));
      }
    }
    expect(() => gpu.gather(gpu.embedding({ rows: R, cols: C, dtype: "f32", data: v }), [23])).to.throw(/id 23 at position 0/);
  });

  it("gatherRows, sliceColumns (one row: a view; several: a copy), sliceRows, writeRows", async () => {
    const x: [Float32Array, number[]] = [rand(6 * 9, 1), [6, 9]];
    await same([x], (be, [t]) => be.gatherRows(t, [5, 0, 1, 2, 4]), 0);
    await same([x], (be, [t]) => be.sliceColumns(t, 3, 5), 0);
    await same([[rand(9, 2), [1, 9]]], (be, [t]) => be.add(be.sliceColumns(t, 2, 7), be.sliceColumns(t, 0, 7)), 0);
    await same([x, [rand(2 * 9, 3), [2, 9]]], (be, [t, s]) => {
      const dst = be.add(t, be.zeros([6, 9]));
      const view = be.sliceRows(dst, 1, 4);
      be.writeRows(dst, 2, s); // the view sees the write
      return be.add(view, view);
    }, 0);
  });

  it("the pool hands out its lowest free buffer of a size, whatever order they came back in", () => {
    const ctx = ctxOf(gpu);
    const bytes = 12345; // a size no other test uses: its pool list holds only these
    const bufs = [ctx.take(bytes), ctx.take(bytes), ctx.take(bytes)];
    for (const i of [1, 2, 0]) ctx.give(bufs[i]);
    const again = [ctx.take(bytes), ctx.take(bytes), ctx.take(bytes)];
    expect(again.map((b) => bufs.indexOf(b))).to.deep.equal([0, 1, 2]);
    for (const i of [2, 0, 1]) ctx.give(bufs[i]);
  });

  it("released buffers are reused without corrupting live tensors or pending reads", async () => {
    const a = gpu.fromHost(rand(1000, 1), [1000]);
    const b = gpu.add(a, a);
    const pending = gpu.read(b);
    gpu.release(b);
    const c = gpu.add(a, gpu.fromHost(new Float32Array(1000).fill(1), [1000])); // may reuse b's buffer
    const [bv, cv] = await Promise.all([pending, gpu.read(c)]);
    const av = rand(1000, 1);
    expect(relL2(bv, av.map((v) => 2 * v))).to.equal(0);
    expect(relL2(cv, av.map((v) => v + 1))).to.equal(0);
  });

  it("checkFinite: the next read throws the first failed check, then reads are clean again", async () => {
    const bad = new Float32Array(300);
    bad[17] = NaN;
    const inf = new Float32Array(5).fill(Infinity);
    gpu.checkFinite(gpu.fromHost(new Float32Array(300), [300]), "fine tensor");
    gpu.checkFinite(gpu.fromHost(bad, [300]), "layer 3 output");
    gpu.checkFinite(gpu.fromHost(inf, [5]), "layer 4 output");
    const t = gpu.fromHost(new Float32Array([1, 2]), [2]);
    let msg = "";
    await gpu.read(t).catch((e: Error) => (msg = e.message));
    expect(msg).to.equal("layer 3 output contains NaN");
    expect(Array.from(await gpu.read(t))).to.deep.equal([1, 2]);
    gpu.checkFinite(gpu.fromHost(inf, [5]), "lm_head output");
    await gpu.read(t).catch((e: Error) => (msg = e.message));
    expect(msg).to.equal("lm_head output contains Inf");
  });

  it("one submit per read: a block's worth of ops and the logits read are one submission", async () => {
    const w = gpu.linear(gptq(128, 256, false, true, 3));
    const x = gpu.fromHost(rand(128, 1), [1, 128]);
    const w0 = gpu.fromHost(rand(128, 2), [128]);
    await gpu.read(x);
    const before = gpu.counters.submits;
    let h = x;
    for (let l = 0; l < 4; l++) {
      const n = gpu.rmsNorm(h, w0, 1e-6);
      const y = gpu.matmul(n, w);
      gpu.checkFinite(y, `block ${l}`);
      h = gpu.add(h, gpu.swiglu(gpu.sliceColumns(y, 0, 128), gpu.sliceColumns(y, 128, 128)));
    }
    await gpu.read(h);
    expect(gpu.counters.submits - before).to.equal(1);
  });

  it("a long op stream is submitted in parts before the read, and its values stay right", async () => {
    const x = gpu.fromHost(new Float32Array([1, -2, 3]), [3]);
    await gpu.read(x);
    const before = gpu.counters.submits;
    let h = x;
    for (let i = 0; i < 150; i++) h = gpu.add(h, x); // 150 dispatches: more than one submit's worth
    expect(Array.from(await gpu.read(h))).to.deep.equal([151, -302, 453]);
    expect(gpu.counters.submits - before).to.be.greaterThan(1);
  });

  /** A few decoder-like blocks (norm, GPTQ matmul, swiglu, residual add), intermediates released. */
  async function blocks(be: Backend, w: ReturnType<Backend["linear"]>, norm: Tensor, seed: number): Promise<Float32Array> {
    const x = be.fromHost(rand(128, seed), [1, 128]);
    let h = x;
    for (let l = 0; l < 3; l++) {
      const n = be.rmsNorm(h, norm, 1e-6);
      const y = be.matmul(n, w);
      const g = be.swiglu(be.sliceColumns(y, 0, 128), be.sliceColumns(y, 128, 128));
      const next = be.add(h, g);
      be.release(n, y, g);
      if (h !== x) be.release(h);
      h = next;
    }
    const v = await be.read(h);
    be.release(x, h);
    return v;
  }

  it("bind groups are cached: a repeated op stream makes none once warm, and its values stay right", async () => {
    const wts = gptq(128, 256, false, true, 5);
    const norm = rand(128, 6);
    const w = gpu.linear(wts), n = gpu.fromHost(norm, [128]);
    const rw = ref.linear(wts), rn = ref.fromHost(norm, [128]);
    // One run to make them: the pool hands out its lowest free buffer, so every later run that
    // frees what it takes gets the same buffers, whatever order they came back in.
    await blocks(gpu, w, n, 1);
    const before = gpu.counters;
    for (let seed = 2; seed < 5; seed++) {
      expect(relL2(await blocks(gpu, w, n, seed), await blocks(ref, rw, rn, seed))).to.be.at.most(1e-6);
    }
    const after = gpu.counters;
    expect(after.bindGroupsCreated - before.bindGroupsCreated).to.equal(0);
    expect(after.bindGroupsReused - before.bindGroupsReused).to.equal(3 * 3 * 4); // 3 runs × 3 blocks × 4 dispatches
    expect(after.encodeMs).to.be.greaterThan(before.encodeMs);
  });

  it("the bind group cache: one group per pipeline and buffer list, at most its cap, forget drops a buffer's groups", () => {
    const device = ctxOf(gpu).device;
    const code = "struct P { n: u32 }\n@group(0) @binding(0) var<uniform> p: P;\n" +
      "@group(0) @binding(1) var<storage, read> a: array<f32>;\n@group(0) @binding(2) var<storage, read_write> o: array<f32>;";
    const pipe = { name: "t", layout: device.createBindGroupLayout({ entries: layoutEntries(code, "t", 256) }) };
    const params = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM });
    const b = Array.from({ length: 5 }, () => device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE }));
    const cache = new BindGroupCache(device, params, 256, 3);
    const g01 = cache.get(pipe, [b[0], b[1]]);
    expect(cache.get(pipe, [b[0], b[1]])).to.equal(g01);
    expect(cache.get(pipe, [b[1], b[0]])).to.not.equal(g01); // the order of the bindings matters
    cache.get(pipe, [b[2], b[3]]);
    expect([cache.size, cache.created, cache.reused]).to.deep.equal([3, 3, 1]);
    cache.get(pipe, [b[3], b[4]]); // over the cap: the oldest made, [0, 1], goes
    expect(cache.size).to.equal(3);
    expect(cache.get(pipe, [b[0], b[1]])).to.not.equal(g01); // made again; [1, 0] goes
    expect(cache.created).to.equal(5);
    cache.forget(b[3]); // [2, 3] and [3, 4]
    expect(cache.size).to.equal(1);
    cache.get(pipe, [b[0], b[1]]);
    expect([cache.size, cache.created]).to.deep.equal([1, 5]);
    for (const x of [params, ...b]) x.destroy();
    expect(() => layoutEntries("@group(0) @binding(1) var<storage, read> a: array<f32>;", "bad", 256)).to.throw(/binding 0 as its uniform/);
  });

  it("bind groups of weights that their Linear took out of scope leave the cache when collected", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const ctx = ctxOf(gpu);
    const x = gpu.fromHost(rand(128, 1), [1, 128]);
    const use = async (): Promise<void> => {
      const y = gpu.matmul(x, gpu.linear(gptq(128, 64, false, false, 9))); // one group binds the weights
      await gpu.read(y);
      gpu.release(y);
    };
    /** Collect until the cache stops shrinking (finalizers run after a collection, on a later task). */
    const settle = async (): Promise<number> => {
      let last = -1;
      for (let i = 0; i < 50 && ctx.bindGroupCounts.cached !== last; i++) {
        last = ctx.bindGroupCounts.cached;
        for (let j = 0; j < 3; j++) {
          gc();
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      return ctx.bindGroupCounts.cached;
    };
    await settle(); // what earlier tests dropped
    await use();
    const held = ctx.bindGroupCounts.cached;
    expect(await settle()).to.equal(held - 1);
    gpu.release(x);
  });

  it("reports clear errors for foreign tensors and bad shapes", () => {
    const t = gpu.fromHost(new Float32Array(6), [2, 3]);
    expect(() => gpu.add(t, ref.fromHost(new Float32Array(6), [2, 3]))).to.throw(/add: tensor \[2, 3\] was not made by the webgpu backend/);
    expect(() => gpu.matmul(t, gpu.linear(dense(4, 2, "f32", false, 1)))).to.throw(/matmul: input has 3 columns, layer expects 4/);
    expect(() => gpu.linear({ ...gptq(128, 16, false, false, 1), groupSize: 96 })).to.throw(/groupSize 96/);
    expect(() => gpu.gatherRows(t, [0, 2])).to.throw(/gatherRows: row 2 is outside 0..1/);
  });
});
