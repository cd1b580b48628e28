// Weight repacking, done once per linear layer at linear() time, straight into arena memory.
// The layouts are documented next to the kernels that read them (assembly/gemm.ts, gemv_q4.ts).
import type { DenseWeights, GptqWeights } from "../backend.js";
import type { Arena } from "./arena.js";
import { f16ToF32 } from "../../io/fp16.js";

export const NR = 8; // columns per panel (assembly/gemm.ts)
export const Q4_REC_EXTRA = 32; // scales f32x4 + z′ i32x4 after the qweight words (gemv_q4.ts)

/**
 * One pass over an f16 weight: whether any half is inf or NaN (exponent all ones: the decode
 * GEMV cannot widen those, assembly/gemv16.ts) and how many are subnormal (exponent 0, mantissa
 * ≠ 0: listed apart, F16 subnormal table below).
 */
export function f16Census(w: Uint16Array): { infNaN: boolean; subnormals: number } {
  let infNaN = false, subnormals = 0;
  for (let i = 0; i < w.length; i++) {
    const e = w[i] & 0x7c00;
    if (e === 0x7c00) infNaN = true;
    else if (e === 0 && (w[i] & 0x3ff) !== 0) subnormals++;
  }
  return { infNaN, subnormals };
}

/** Where an f16 weight's subnormal table lives (all 0: the weight has none). */
export interface SubnormalTable {
  readonly offs: number;
  readonly ents: number;
}
export const NO_SUBNORMALS: SubnormalTable = { offs: 0, ents: 0 };

/** Bytes of the table for a weight of np padded columns and n subnormal halves. */
export const subnormalTableBytes = (np: number, n: number): number =>
  n === 0 ? 0 : (np / NR + 2) * 4 + n * 8;

/**
 * The F16 subnormal table (layout and why: assembly/gemv16.ts). Scans the packed panels at
 * `weight` ([P][K][8] halves, so the scan meets the halves in (panel, k, column) order, the order
 * the kernels walk the lists in), writes each subnormal half's (k·8 + column, exact f32 value)
 * and stores +0 in its place. offs [P + 1] u32 (entries of panel p: offs[p] ≤ i < offs[p + 1]),
 * then ents [n] (u32, f32), 8-byte aligned.
 */
export function packSubnormalTable(arena: Arena, weight: number, K: number, np: number, n: number): SubnormalTable {
  if (n === 0) return NO_SUBNORMALS;
  const P = np / NR;
  const offs = arena.allocWeights(subnormalTableBytes(np, n));
  const ents = offs + (P + 1 + ((P + 1) & 1)) * 4; // 8-byte aligned
  const h = arena.u16(weight, np * K);
  const o = arena.i32(offs, P + 1);
  const key = arena.i32(ents, 2 * n);
  const val = arena.f32(ents, 2 * n);
  let i = 0;
  for (let p = 0; p < P; p++) {
    o[p] = i;
    const base = p * K * NR;
    for (let j = base; j < base + K * NR; j++) {
      const v = h[j];
      if ((v & 0x7c00) !== 0 || (v & 0x3ff) === 0) continue;
      if (i === n) throw new Error(`linear: more subnormal halves than counted (${n})`);
      key[2 * i] = j - base; // k·8 + column
      val[2 * i + 1] = f16ToF32(v);
      h[j] = 0;
      i++;
    }
  }
  o[P] = i;
  if (i !== n) throw new Error(`linear: ${i} subnormal halves found in the panels, ${n} counted`);
  return { offs, ents };
}

export const paddedCols = (n: number): number => Math.ceil(n / NR) * NR;

/** Bias padded to Np f32 (zeros where absent). */
export function packBias(arena: Arena, n: number, bias: Float32Array | undefined, where: string): number {
  const np = paddedCols(n);
  if (bias && bias.length !== n) throw new Error(`${where}: bias has ${bias.length} values, expected ${n}`);
  const p = arena.allocWeights(np * 4);
  const dst = arena.f32(p, np);
  dst.fill(0);
  if (bias) dst.set(bias);
  return p;
}

/** Bytes the packed dense weight takes (for arena placement). */
export function denseBytes(w: DenseWeights): number {
  return paddedCols(w.outFeatures) * w.inFeatures * (w.dtype === "f32" ? 4 : 2) + paddedCols(w.outFeatures) * 4;
}

/** W [N, K] → panels [N/8][K][8], f32 or raw 16-bit patterns. */
export function packDense(arena: Arena, w: DenseWeights): number {
  const { inFeatures: K, outFeatures: N } = w;
  const np = paddedCols(N);
  const wide = w.dtype === "f32";
  if (wide !== w.weight instanceof Float32Array) {
    throw new Error(`linear: dtype ${w.dtype} but weight is a ${w.weight.constructor.name}`);
  }
  const p = arena.allocWeights(np * K * (wide ? 4 : 2));
  const dst = wide ? arena.f32(p, np * K) : arena.u16(p, np * K);
  // The last panel's padding columns must be zero (they are computed, then dropped).
  if (N % NR !== 0) dst.fill(0, Math.floor(N / NR) * NR * K);
  const src = w.weight;
  for (let n = 0; n < N; n++) {
    const panel = (n >> 3) * K * NR + (n & 7);
    const row = n * K;
    for (let k = 0; k < K; k++) dst[panel + k * NR] = src[row + k];
  }
  return p;
}

export function gptqBytes(w: GptqWeights): number {
  const G = w.inFeatures / w.groupSize;
  return (w.outFeatures / 4) * G * (w.groupSize * 2 + Q4_REC_EXTRA) + w.outFeatures * 4;
}

/** Check a GPTQ layer's shapes; throws naming the field. */
export function checkGptq(w: GptqWeights): void {
  const { inFeatures: K, outFeatures: N, groupSize: gs } = w;
  const bad = (what: string): never => {
    throw new Error(`linear (GPTQ ${K}→${N}, group ${gs}): ${what}`);
  };
  if (w.bits !== 4) bad(`bits = ${w.bits}, only 4 is supported`);
  if (!(gs > 0) || gs % 8 !== 0) bad("groupSize must be a positive multiple of 8");
  if (K % gs !== 0) bad(`inFeatures ${K} is not a multiple of groupSize ${gs}`);
  if (N % 8 !== 0) bad(`outFeatures ${N} is not a multiple of 8 (qzeros packs 8 columns per int32)`);
  const G = K / gs;
  if (w.qweight.length !== (K / 8) * N) bad(`qweight has ${w.qweight.length} values, expected ${(K / 8) * N} = [${K / 8}, ${N}]`);
  if (w.qzeros.length !== G * (N / 8)) bad(`qzeros has ${w.qzeros.length} values, expected ${G * (N / 8)} = [${G}, ${N / 8}]`);
  if (w.scales.length !== G * N) bad(`scales has ${w.scales.length} values, expected ${G * N} = [${G}, ${N}]`);
  if (w.gIdx.length !== K) bad(`g_idx has ${w.gIdx.length} values, expected ${K}`);
  for (let i = 0; i < K; i++) {
    if (w.gIdx[i] !== Math.floor(i / gs)) {
      bad(`g_idx[${i}] = ${w.gIdx[i]}: only sequential groups (desc_act = false) are supported`);
    }
  }
}

/** Inputs per K block of the GPTQ record layout (assembly/gemv_q4.ts, Q4_BLOCK_K). */
export const Q4_BLOCK_K = 4096;

/**
 * GPTQ → records { gs/8 × 4 qweight int32, 4 scales f32, 4 z′ i32 } per (column quad, group),
 * ordered [K block][N/4 column quads][groups of the block] (blocks of Q4_BLOCK_K inputs; with
 * K ≤ Q4_BLOCK_K simply [quad][group]).
 */
export function packGptq(arena: Arena, w: GptqWeights): number {
  const { inFeatures: K, outFeatures: N, groupSize: gs } = w;
  const G = K / gs;
  const oct = gs / 8;
  const recInts = oct * 4 + Q4_REC_EXTRA / 4;
  const gb = Math.max(1, Math.floor(Q4_BLOCK_K / gs));
  const p = arena.allocWeights((N / 4) * G * recInts * 4);
  const di = arena.i32(p, (N / 4) * G * recInts);
  const df = arena.f32(p, (N / 4) * G * recInts);
  let r = 0;
  for (let g0 = 0; g0 < G; g0 += gb) {
    const g1 = Math.min(G, g0 + gb);
    for (let cq = 0; cq < N / 4; cq++) {
      for (let g = g0; g < g1; g++) {
        for (let o = 0; o < oct; o++) {
          const src = (g * oct + o) * N + cq * 4;
          for (let c = 0; c < 4; c++) di[r++] = w.qweight[src + c];
        }
        for (let c = 0; c < 4; c++) df[r++] = f16ToF32(w.scales[g * N + cq * 4 + c]);
        for (let c = 0; c < 4; c++) {
          const n = cq * 4 + c;
          di[r++] = ((w.qzeros[g * (N / 8) + (n >> 3)] >>> (4 * (n & 7))) & 15) + 1;
        }
      }
    }
  }
  return p;
}

/**
 * Records of a synthetic K×N GPTQ layer (groups of gs) for the kernel probe (backend.ts): what a
 * kernel does per record does not depend on the values, so the qweight words repeat a short
 * pseudo-random pattern, every scale is 0.01 and every z′ is 8 — written with native fills
 * instead of packGptq's loops (a few ms of cold JavaScript at start-up).
 */
export function packGptqSynthetic(arena: Arena, K: number, N: number, gs: number): number {
  const oct = gs / 8;
  const recInts = oct * 4 + Q4_REC_EXTRA / 4;
  const n = (N / 4) * (K / gs) * recInts;
  const p = arena.allocWeights(n * 4);
  const di = arena.i32(p, n);
  const df = arena.f32(p, n);
  // One record written by hand, then doubled with copyWithin (records have one stride).
  let s = 0x9e3779b9 | 0;
  for (let i = 0; i < oct * 4; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    di[i] = s;
  }
  df.fill(0.01, oct * 4, oct * 4 + 4);
  di.fill(8, oct * 4 + 4, recInts);
  for (let have = recInts; have < n; have *= 2) di.copyWithin(have, 0, Math.min(have, n - have));
  return p;
}
