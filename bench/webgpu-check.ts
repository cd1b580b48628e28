// The WebGPU kernels against the reference backend at the model's own shapes (the unit tests use
// small awkward ones): decode attention over a few hundred keys of 32 heads × 128 dims, ViT
// attention over 1024 tokens of heads of 104 dims, causal prefill attention, the GPTQ GEMVs of a
// decoder layer, a slice of the fp16 lm_head and a ViT GEMM. Meant for a real GPU, where work is
// spread over many more invocations at once than on a software adapter. Where the adapter has
// f16 subgroup matrices, the cases that run on them (attention with many queries, the fp16 GEMMs
// with M > 1) run once per matrix-unit kernel variant (mma.ts's MMA_KERNELS: 1sg, then 8sg).
//
//   npx node dist/bench/webgpu-check.js [--tol 1e-5] [--json FILE]
//
// Prints rel L2 per case and exits 1 if any exceeds --tol.
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { ReferenceBackend } from "../reference/backend.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import type { Backend, LinearWeights, Tensor } from "../src/ops/backend.js";
import { f32ArrayToF16, f32ToF16 } from "../src/io/fp16.js";
import { relL2 } from "../src/conformance/compare.js";
import { rand } from "../src/conformance/rand.js";
import type { AdapterReport } from "../src/ops/webgpu/device.js";
import { MMA_KERNELS, MMA_VARIANTS } from "../src/ops/webgpu/mma.js";

function gptq(K: number, N: number, seed: number): LinearWeights {
  const gs = 128, G = K / gs;
  const words = rand((K / 8) * N + G * (N / 8), seed, 0, 2 ** 32);
  return {
    kind: "gptq", inFeatures: K, outFeatures: N, bits: 4, groupSize: gs,
    qweight: Int32Array.from(words.subarray(0, (K / 8) * N), (v) => v | 0),
    qzeros: Int32Array.from(words.subarray((K / 8) * N), (v) => v | 0),
    scales: Uint16Array.from(rand(G * N, seed + 2, 0.001, 0.02), (v) => f32ToF16(v)),
    gIdx: Int32Array.from({ length: K }, (_, k) => Math.floor(k / gs)),
  };
}

function dense16(K: number, N: number, seed: number, bias: boolean): LinearWeights {
  return {
    kind: "dense", inFeatures: K, outFeatures: N, dtype: "f16", weight: f32ArrayToF16(rand(K * N, seed, -0.05, 0.05)),
    bias: bias ? rand(N, seed + 1) : undefined,
  };
}

/** `mma`: the case runs on the matrix units where the device has them (once per variant). */
type Case = { name: string; inputs: Array<[Float32Array, number[]]>; op: (be: Backend, xs: Tensor[]) => Tensor; mma?: boolean };

function attention(name: string, Tq: number, Tk: number, H: number, D: number, causal: boolean, queryOffset: number): Case {
  return {
    name: `attention ${name}: Tq ${Tq}, Tk ${Tk}, ${H} heads × ${D}${causal ? `, causal from ${queryOffset}` : ""}`,
    inputs: [[rand(Tq * H * D, 1, -2, 2), [Tq, H, D]], [rand(Tk * H * D, 2, -2, 2), [Tk, H, D]], [rand(Tk * H * D, 3), [Tk, H, D]]],
    op: (be, [q, k, v]) => be.attention(q, k, v, { scale: 1 / Math.sqrt(D), causal, queryOffset }),
    mma: Tq > 4, // backend.ts's ATT_SPLIT_MAX_TQ: up to 4 queries split over the keys instead
  };
}

function matmul(name: string, M: number, w: LinearWeights): Case {
  return {
    name: `matmul ${name}: M ${M}, K ${w.inFeatures}, N ${w.outFeatures}`,
    inputs: [[rand(M * w.inFeatures, 4), [M, w.inFeatures]]],
    op: (be, [x]) => be.matmul(x, be.linear(w)),
    mma: M > 1 && w.kind === "dense",
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tol: { type: "string", default: "1e-5" }, json: { type: "string" } } });
  const tol = Number(values.tol);
  const cases: Case[] = [
    attention("decode", 1, 371, 32, 128, true, 370),
    attention("ViT", 1024, 1024, 4, 104, false, 0),
    attention("prefill", 300, 300, 4, 128, true, 0),
    matmul("GPTQ c_attn", 1, gptq(4096, 12288, 5)),
    matmul("GPTQ mlp c_proj", 1, gptq(11008, 4096, 6)),
    matmul("GPTQ c_attn, prefill rows", 70, gptq(4096, 12288, 10)),
    matmul("GPTQ mlp c_proj, prefill rows", 70, gptq(11008, 4096, 11)),
    matmul("fp16 lm_head slice", 1, dense16(4096, 8192, 7, false)),
    matmul("fp16 ViT GEMM", 256, dense16(1664, 1664, 8, true)),
    matmul("fp16 ViT c_proj, a partial row tile", 1000, dense16(8192, 1664, 9, true)),
    { name: "rmsNorm 1 × 4096", inputs: [[rand(4096, 9, -3, 3), [1, 4096]], [rand(4096, 10), [4096]]], op: (be, [x, w]) => be.rmsNorm(x, w, 1e-6) },
  ];
  const ref = new ReferenceBackend();
  const results: Array<{ name: string; relL2: number }> = [];
  let failed = false;
  let backendName = "";
  // The first pass runs every case (1sg); the others only the matrix-unit cases, and only where
  // the device has matrix units and the variant was not replaced by 1sg (report.mmaNote).
  for (const variant of MMA_VARIANTS) {
    const gpu = await createBackend({ name: "webgpu", mmaKernel: variant });
    try {
      const report = (gpu as unknown as { report: AdapterReport }).report;
      const first = variant === MMA_VARIANTS[0];
      if (first) {
        backendName = gpu.name;
        console.log(`backend: ${gpu.name}`);
        if (!report.matrixF16) console.log("  (no f16 subgroup matrices: one pass, FMA kernels only)");
      }
      if (!first && !report.matrixF16) break;
      if (report.mmaKernel !== variant) {
        console.log(`  ${variant}: skipped (${report.mmaNote})`);
        continue;
      }
      const tag = report.matrixF16 ? ` [${MMA_KERNELS[variant].name}]` : "";
      for (const c of cases) {
        if (!first && !c.mma) continue;
        const name = c.mma ? `${c.name}${tag}` : c.name;
        const want = await ref.read(c.op(ref, c.inputs.map(([d, s]) => ref.fromHost(d, s))));
        const got = await gpu.read(c.op(gpu, c.inputs.map(([d, s]) => gpu.fromHost(d, s))));
        const e = relL2(got, want);
        const ok = e <= tol;
        failed ||= !ok;
        results.push({ name, relL2: e });
        console.log(`  ${ok ? "ok  " : "FAIL"} ${name}: rel L2 ${e.toExponential(2)}`);
      }
    } finally {
      await disposeBackend(gpu);
    }
  }
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ backend: backendName, tol, results }, null, 2));
  if (failed) process.exit(1);
}

main().catch((e: Error) => {
  console.error(`webgpu-check: ${e.message}`);
  process.exit(1);
});
