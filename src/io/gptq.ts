// Plain GPTQ dequantisation: the oracle that packed-int4 kernels are tested against.
//
// AutoGPTQ 4-bit packing as shipped in Qwen-VL-Chat-Int4 (formula documented in
// src/ops/backend.ts GptqWeights and /work/shared/conformance/README.md):
//   q[i,o] = (qweight[i/8, o] >> (4*(i%8))) & 15
//   z[g,o] = (qzeros[g, o/8] >> (4*(o%8))) & 15
//   W[i,o] = scales[g_idx[i], o] * (q[i,o] - (z[g_idx[i], o] + 1))
//
// API
//   dequantizeGptq(w: GptqWeights): Float32Array     W as [out, in] row-major (nn.Linear layout)
import type { GptqWeights } from "../ops/backend.js";
import { f16ArrayToF32 } from "./fp16.js";

export function dequantizeGptq(w: GptqWeights): Float32Array {
  const { inFeatures: K, outFeatures: N } = w;
  const scales = f16ArrayToF32(w.scales);
  const out = new Float32Array(N * K);
  for (let i = 0; i < K; i++) {
    const g = w.gIdx[i];
    const shift = 4 * (i % 8);
    const qRow = (i >>> 3) * N;
    for (let o = 0; o < N; o++) {
      const q = (w.qweight[qRow + o] >>> shift) & 15;
      const z = (w.qzeros[g * (N >>> 3) + (o >>> 3)] >>> (4 * (o % 8))) & 15;
      out[o * K + i] = scales[g * N + o] * (q - (z + 1));
    }
  }
  return out;
}
