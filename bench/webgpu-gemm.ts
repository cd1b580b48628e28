// The dense GEMM kernels for M > 1 (linear.ts, DENSE_GEMM_KERNELS) side by side at the ViT's
// shapes: x [M, K] f32 times an fp16 weight [N, K] with bias, as one dispatch per product.
//
//   npx node dist/bench/webgpu-gemm.js [--m 1024] [--shapes 1664x1664,1664x8192,8192x1664]
//        [--reps 10] [--kernels dense_gemm_128,dense_gemm_mma,dense_gemm_mma8] [--json FILE]
//
// dense_gemm_mma and dense_gemm_mma8 are the two matrix-unit variants (mma.ts's MMA_KERNELS: one
// subgroup per 32 × 64 tile, and eight sharing a 128 × 128 tile through workgroup memory), run
// where the device has f16 subgroup matrices (and, for the second, 44 KiB of workgroup memory).
//
// Each (kernel, shape) runs once untimed, is read back and compared with dense_gemm's output
// (rel L2; dense_gemm itself against a float64 product at 256 sampled outputs), then --reps
// times, each dispatch in a compute pass of its own with timestamp writes at the pass's begin and
// end (Dawn offers none inside a pass); the best rep is reported. Without timestamp-query it
// falls back to the wall clock from submit to onSubmittedWorkDone per rep (includes the submit's
// overhead). The device is acquired with Dawn's timestamp_quantization off (as
// bench/webgpu-profile.ts), so that timestamps are not rounded.
//
// It reaches into GpuContext (src/ops/webgpu/context.ts: pass, enc, endPass) and fails with a
// clear message if those change.
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { f16ToF32, f32ToF16 } from "../src/io/fp16.js";
import type { DenseWeights } from "../src/ops/backend.js";
import { acquireDevice, loadShaders } from "../src/ops/webgpu/device.js";
import { mmaKernelNamed } from "../src/ops/webgpu/mma.js";
import { GpuContext } from "../src/ops/webgpu/context.js";
import { DENSE_GEMM_KERNELS, encodeMatmul, uploadLinear, type DenseGemmKernel } from "../src/ops/webgpu/linear.js";
import { relL2 } from "../src/conformance/compare.js";

/** The GpuContext members used to put one dispatch into a timed pass of its own. */
interface PassInternals {
  pass: GPUComputePassEncoder | null;
  enc(): GPUCommandEncoder;
  endPass(): void;
}

// ViT-bigG of Qwen-VL-Chat: 48 blocks, each with q, k, v and out (1664 → 1664), c_fc (1664 →
// 8192) and c_proj (8192 → 1664) — 288 of the 295 dense_gemm calls of one image (docs/webgpu-h200.md).
const VIT_BLOCKS = 48;
const VIT_PER_BLOCK: Record<string, number> = { "1664x1664": 4, "1664x8192": 1, "8192x1664": 1 };

/**
 * How far a kernel may differ from dense_gemm (rel L2): the FMA kernels sum in the same order
 * (only contraction differs); the matrix-unit kernels carry split_f16's 2^-22 and the matrix
 * units' own f32 summation order.
 */
function bound(kernel: DenseGemmKernel): number {
  return mmaKernelNamed(kernel) ? 1e-5 : 1e-6;
}

let seed = 12345;
function rnd(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}

interface Row {
  kernel: DenseGemmKernel;
  M: number;
  K: number;
  N: number;
  ms: number;
  tflops: number;
  msPerRep: number[];
  relL2VsDenseGemm: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      m: { type: "string", default: "1024" },
      shapes: { type: "string", default: "1664x1664,1664x8192,8192x1664" },
      reps: { type: "string", default: "10" },
      kernels: { type: "string", default: Object.keys(DENSE_GEMM_KERNELS).join(",") },
      json: { type: "string" },
    },
  });
  const M = Number(values.m);
  const reps = Number(values.reps);
  if (!(Number.isInteger(M) && M > 1)) throw new Error(`--m must be an integer > 1, got ${values.m}`);
  if (!(Number.isInteger(reps) && reps >= 1)) throw new Error(`--reps must be a positive integer, got ${values.reps}`);
  const shapes = values.shapes.split(",").map((s) => {
    const [K, N] = s.split("x").map(Number);
    if (!(Number.isInteger(K) && K > 0 && Number.isInteger(N) && N > 0)) throw new Error(`--shapes: bad shape ${s} (KxN)`);
    return { K, N };
  });
  const kernels = values.kernels.split(",") as DenseGemmKernel[];
  for (const k of kernels) if (!(k in DENSE_GEMM_KERNELS)) throw new Error(`--kernels: unknown kernel ${k}`);
  // The check compares with dense_gemm's output, so it runs first.
  const order: DenseGemmKernel[] = ["dense_gemm", ...kernels.filter((k) => k !== "dense_gemm")];

  const [{ device, report }, shaders] = await Promise.all([acquireDevice({ disabledToggles: ["timestamp_quantization"] }), loadShaders()]);
  // Each matrix-unit variant is forced by name below (ctx.denseGemm), so the context's own one does not matter.
  const ctx = new GpuContext(device, shaders, undefined, undefined, report.matrixF16);
  console.log(`subgroup matrix configurations: ${report.matrixConfigs.join(", ") || "none"}; matrix-unit kernels ${report.matrixF16 ? "available" : "not available"}`);
  const inner = ctx as unknown as PassInternals;
  for (const m of ["enc", "endPass"] as const) {
    if (typeof inner[m] !== "function") throw new Error(`webgpu-gemm: GpuContext has no ${m} (context.ts changed?)`);
  }
  for (const k of [...order]) {
    if (!ctx.matrixF16 && mmaKernelNamed(k)) {
      console.log(`${k}: skipped (no f16 subgroup matrices with 32-wide subgroups on this device)`);
      order.splice(order.indexOf(k), 1);
    }
  }
  const fits = order.filter((k) => DENSE_GEMM_KERNELS[k].sharedBytes <= ctx.maxWorkgroupStorage);
  for (const k of order) if (!fits.includes(k)) console.log(`${k}: skipped (needs ${DENSE_GEMM_KERNELS[k].sharedBytes} bytes of workgroup memory, the device offers ${ctx.maxWorkgroupStorage})`);
  order.splice(0, order.length, ...fits);
  const timestamps = device.features.has("timestamp-query");
  console.log(`adapter: ${[report.vendor, report.architecture, report.description].filter((s) => s).join(" ")}; timing: ${timestamps ? "timestamp-query" : "wall clock"}`);
  const qs = timestamps ? device.createQuerySet({ type: "timestamp", count: 2 * reps }) : null;
  const resolve = timestamps ? device.createBuffer({ size: 16 * reps, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : null;

  const rows: Row[] = [];
  const dummy = ctx.take(4);
  for (const { K, N } of shapes) {
    const wf = new Uint16Array(N * K);
    // Weights of ViT-like magnitude (values do not change the kernels' speed).
    for (let i = 0; i < wf.length; i++) wf[i] = f32ToF16((rnd() * 2 - 1) * 0.05);
    const biasV = Float32Array.from({ length: N }, () => rnd() * 2 - 1);
    const w: DenseWeights = { kind: "dense", inFeatures: K, outFeatures: N, dtype: "f16", weight: wf, bias: biasV };
    const lin = uploadLinear(ctx, w);
    const xv = Float32Array.from({ length: M * K }, () => rnd() * 2 - 1);
    const xb = ctx.upload(xv);
    const ob = ctx.take(M * N * 4);
    const flops = 2 * M * N * K;
    let want: Float32Array | null = null;
    for (const kernel of order) {
      ctx.denseGemm = kernel;
      ctx.clear(ob, 0, M * N * 4);
      encodeMatmul(ctx, lin, M, xb, 0, ob, 0, dummy);
      const got = await ctx.read(ob, 0, M * N);
      let err = 0;
      if (want === null) {
        want = got;
        // dense_gemm against float64 sums at sampled outputs (the weights widened on the host).
        let num = 0, den = 0;
        for (let s = 0; s < 256; s++) {
          const m = Math.floor(rnd() * M), j = Math.floor(rnd() * N);
          let acc = biasV[j];
          let sum = 0;
          for (let k = 0; k < K; k++) sum += xv[m * K + k] * f16ToF32(wf[j * K + k]);
          acc += sum;
          num += (got[m * N + j] - acc) ** 2;
          den += acc ** 2;
        }
        err = Math.sqrt(num / den);
        console.log(`${K}x${N}: dense_gemm vs float64 at 256 sampled outputs: rel L2 ${err.toExponential(2)}`);
        if (!(err <= 1e-5)) throw new Error(`webgpu-gemm: dense_gemm disagrees with the float64 product (rel L2 ${err})`);
        err = 0;
      } else {
        err = relL2(got, want);
      }
      const msPerRep: number[] = [];
      ctx.flush();
      if (qs && resolve) {
        for (let r = 0; r < reps; r++) {
          inner.endPass();
          inner.pass = inner.enc().beginComputePass({
            timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * r, endOfPassWriteIndex: 2 * r + 1 },
          });
          encodeMatmul(ctx, lin, M, xb, 0, ob, 0, dummy);
          inner.endPass();
        }
        const out = device.createBuffer({ size: 16 * reps, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        inner.enc().resolveQuerySet(qs, 0, 2 * reps, resolve, 0);
        inner.enc().copyBufferToBuffer(resolve, 0, out, 0, 16 * reps);
        ctx.flush();
        await out.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(out.getMappedRange().slice(0));
        out.unmap();
        out.destroy();
        for (let r = 0; r < reps; r++) msPerRep.push(Number(t[2 * r + 1] - t[2 * r]) / 1e6);
      } else {
        for (let r = 0; r < reps; r++) {
          const t0 = performance.now();
          encodeMatmul(ctx, lin, M, xb, 0, ob, 0, dummy);
          ctx.flush();
          await device.queue.onSubmittedWorkDone();
          msPerRep.push(performance.now() - t0);
        }
      }
      const ms = Math.min(...msPerRep);
      const row: Row = { kernel, M, K, N, ms, tflops: flops / (ms * 1e-3) / 1e12, msPerRep, relL2VsDenseGemm: err };
      rows.push(row);
      console.log(`  ${kernel.padEnd(18)} ${K}x${N}: ${ms.toFixed(3)} ms (best of ${reps}), ${row.tflops.toFixed(2)} TFLOP/s, rel L2 vs dense_gemm ${err.toExponential(2)}`);
    }
    ctx.give(xb);
    ctx.give(ob);
    for (const c of lin.dense) c.weight.destroy();
    lin.bias?.destroy();
  }

  // What the ViT's 288 block products of one image would take with each kernel (shapes given).
  const perImage: Record<string, number> = {};
  if (M === 1024 && shapes.every(({ K, N }) => `${K}x${N}` in VIT_PER_BLOCK)) {
    for (const kernel of order) {
      perImage[kernel] = VIT_BLOCKS * rows.filter((r) => r.kernel === kernel).reduce((a, r) => a + VIT_PER_BLOCK[`${r.K}x${r.N}`] * r.ms, 0);
      console.log(`ViT block products per image (${VIT_BLOCKS} × 4 × 1664², 1664×8192, 8192×1664): ${kernel} ${perImage[kernel].toFixed(1)} ms`);
    }
  }
  const bad = rows.filter((r) => !(r.relL2VsDenseGemm <= bound(r.kernel)));
  if (values.json) {
    fs.writeFileSync(values.json, JSON.stringify({ adapter: report, timing: timestamps ? "timestamp-query" : "wall clock", reps, rows, vitBlockProductsMsPerImage: perImage }, null, 1));
  }
  ctx.destroy();
  if (bad.length > 0) throw new Error(`webgpu-gemm: ${bad.map((r) => `${r.kernel} ${r.K}x${r.N}`).join(", ")} differ from dense_gemm by more than their bound (1e-6; the matrix-unit kernels 1e-5)`);
}

await main();
