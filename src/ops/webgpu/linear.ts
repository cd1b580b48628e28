// Linear layers on the GPU: weight upload (once, split by output rows/columns so that every
// binding stays within the device's storage binding limit) and the matmul dispatches.
/// <reference types="@webgpu/types" />
import type { DenseWeights, GptqWeights, Linear, LinearWeights } from "../backend.js";
import { f16ArrayToF32 } from "../../io/fp16.js";
import type { GpuContext, PooledBuffer } from "./context.js";
import {
  MMA_KERNELS, encodeMma, mmaChunkRows, mmaKernelNamed, mmaWeightFits, releaseSplit, splitOperand, type MmaKernel, type SplitOperand,
} from "./mma.js";

const DTYPE_CODE = { f32: 0, f16: 1, bf16: 2 } as const;

/** Output columns per workgroup of gptq_gemv.wgsl (8 column quads × 32 K-splits). */
const GPTQ_GEMV_COLUMNS = 32;
/** Output rows per workgroup of dense_gemv4.wgsl (8 groups of 32 lanes × 4 rows). */
const DENSE_GEMV4_ROWS = 32;

/**
 * The dense GEMM kernels for M > 1: the output tile of one workgroup, [rows of x, output
 * columns] (TM × TN in each .wgsl), and the workgroup memory each declares (bytes). All take the
 * same parameters and bindings and sum k in the same order; bench/webgpu-gemm.ts times them side
 * by side.
 */
export const DENSE_GEMM_KERNELS = {
  dense_gemm: { tile: [64, 64], sharedBytes: 2 * 1024 * 4 },
  dense_gemm_128: { tile: [128, 128], sharedBytes: 2 * 512 * 16 },
  // On the matrix units, from split_f16's hi/lo halves of x; only where `mmaFits` (f16 weights,
  // K % 16 == 0, chunks of whole tile.n columns) and the device has them (matrixF16). The two
  // variants of mma.ts's MMA_KERNELS; the backend's own is ctx.mmaKernel.
  dense_gemm_mma: { tile: [MMA_KERNELS["1sg"].tile.m, MMA_KERNELS["1sg"].tile.n], sharedBytes: MMA_KERNELS["1sg"].sharedBytes },
  dense_gemm_mma8: { tile: [MMA_KERNELS["8sg"].tile.m, MMA_KERNELS["8sg"].tile.n], sharedBytes: MMA_KERNELS["8sg"].sharedBytes },
} as const;
export type DenseGemmKernel = keyof typeof DENSE_GEMM_KERNELS;

/**
 * The dense GEMM kernel for an M > 1 product (unless the context forces one). On an H200 at the
 * ViT's M = 1024 (bench/results/h200-webgpu-gemm-variants.json) dense_gemm_128 beat dense_gemm at
 * K × N = 1664 × 1664, 1664 × 8192 and 8192 × 1664 (0.496 / 1.602 / 2.557 ms against 0.522 /
 * 1.955 / 2.559); two other tilings (128 × 64, and 128 × 128 with K steps of 16) lost overall and
 * were removed (docs/webgpu-h200.md keeps their figures). Up to 64 rows (dense_gemm's tile height; not measured) the 128-row
 * tile would be at least half padding and make half as many workgroups, so dense_gemm stays.
 * Where the device has matrix units, encodeMatmul takes the backend's matrix-unit kernel
 * (ctx.mmaKernel) first (mmaSplit).
 */
export function denseGemmKernel(M: number): DenseGemmKernel {
  return M > DENSE_GEMM_KERNELS.dense_gemm.tile[0] ? "dense_gemm_128" : "dense_gemm";
}

/** Whether `kernel` can run this layer: f16 weights, K % tile.k == 0, chunks of whole tile.n rows. */
export function mmaFits(lin: GpuLinear, kernel: MmaKernel): boolean {
  return lin.kind === "dense" && lin.dtype === DTYPE_CODE.f16 && mmaWeightFits(kernel, lin.inFeatures, lin.dense.map((c) => c.nc));
}

/** One chunk of output features [n0, n0 + nc) and its buffers. */
interface DenseChunk {
  readonly n0: number;
  readonly nc: number;
  readonly weight: GPUBuffer;
}

interface GptqChunk {
  readonly n0: number;
  readonly nc: number;
  /** qweight[:, n0:n0+nc] as u32 [K/8, nc]. */
  readonly qweight: GPUBuffer;
  /** scales as f32 [G, nc] (exact widening of the fp16 patterns). */
  readonly scales: GPUBuffer;
  /** stored zero + 1 (the AutoGPTQ convention) as f32 [G, nc]. */
  readonly zp: GPUBuffer;
}

export class GpuLinear implements Linear {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly kind: "dense" | "gptq",
    readonly dtype: number,
    readonly dense: readonly DenseChunk[],
    readonly gptq: readonly GptqChunk[],
    readonly gIdx: GPUBuffer | null,
    readonly groupSize: number,
    /** g_idx[k] = k / groupSize for every k (no act-order). */
    readonly sequentialGroups: boolean,
    readonly bias: GPUBuffer | null,
  ) {}
}

function checkSizes(w: LinearWeights): void {
  const { inFeatures: K, outFeatures: N } = w;
  if (!(Number.isInteger(K) && K > 0 && Number.isInteger(N) && N > 0)) {
    throw new Error(`linear: bad sizes inFeatures=${K} outFeatures=${N}`);
  }
  if (w.bias && w.bias.length !== N) throw new Error(`linear: bias has ${w.bias.length} values, expected ${N}`);
}

/** Output rows per chunk so that one chunk's bytes stay within the binding limit. */
function rowsPerChunk(bytesPerRow: number, limit: number, what: string): number {
  const rows = Math.floor(limit / bytesPerRow);
  if (rows < 1) throw new Error(`linear: one ${what} row of ${bytesPerRow} bytes exceeds the binding limit ${limit}`);
  return rows;
}

export function uploadLinear(ctx: GpuContext, w: LinearWeights): GpuLinear {
  checkSizes(w);
  const bias = w.bias ? ctx.weightBuffer(w.bias, "bias") : null;
  return w.kind === "dense" ? uploadDense(ctx, w, bias) : uploadGptq(ctx, w, bias);
}

function uploadDense(ctx: GpuContext, w: DenseWeights, bias: GPUBuffer | null): GpuLinear {
  const { inFeatures: K, outFeatures: N } = w;
  if (w.weight.length !== K * N) throw new Error(`linear: weight has ${w.weight.length} values, expected ${N}×${K}`);
  if ((w.dtype === "f32") !== (w.weight instanceof Float32Array)) {
    throw new Error(`linear: dtype ${w.dtype} does not match its ${w.weight.constructor.name} weight`);
  }
  const esize = w.dtype === "f32" ? 4 : 2;
  // 16-bit rows of odd K straddle words: keep chunks an even number of rows so each starts on a word.
  let per = rowsPerChunk(K * esize, ctx.weightChunk - 4, "weight");
  if (esize === 2 && K % 2 === 1 && per < N) per = Math.max(2, per - (per % 2));
  // Where the matrix units may run it (either variant), chunks of whole 128-row tiles.
  if (ctx.matrixF16 && w.dtype === "f16" && per < N) per = mmaChunkRows(per);
  const chunks: DenseChunk[] = [];
  for (let n0 = 0; n0 < N; n0 += per) {
    const nc = Math.min(per, N - n0);
    chunks.push({ n0, nc, weight: ctx.weightBuffer(w.weight.subarray(n0 * K, (n0 + nc) * K), `dense[${n0}..]`) });
  }
  return new GpuLinear(K, N, "dense", DTYPE_CODE[w.dtype], chunks, [], null, 0, false, bias);
}

function uploadGptq(ctx: GpuContext, w: GptqWeights, bias: GPUBuffer | null): GpuLinear {
  const { inFeatures: K, outFeatures: N, groupSize: gs } = w;
  if (w.bits !== 4) throw new Error(`linear: GPTQ bits must be 4, got ${w.bits}`);
  if (K % 8 !== 0 || N % 8 !== 0) throw new Error(`linear: GPTQ needs in/out features divisible by 8, got ${K}/${N}`);
  if (!(Number.isInteger(gs) && gs > 0 && gs % 8 === 0 && K % gs === 0)) {
    throw new Error(`linear: GPTQ groupSize ${gs} must be a multiple of 8 dividing inFeatures ${K}`);
  }
  const G = K / gs;
  const expect = { qweight: (K / 8) * N, qzeros: G * (N / 8), scales: G * N, gIdx: K };
  for (const [field, n] of Object.entries(expect)) {
    const got = (w as unknown as Record<string, ArrayLike<number>>)[field].length;
    if (got !== n) throw new Error(`linear: GPTQ ${field} has ${got} values, expected ${n}`);
  }
  let sequential = true;
  for (let k = 0; k < K; k++) {
    const g = w.gIdx[k];
    if (!(Number.isInteger(g) && g >= 0 && g < G)) throw new Error(`linear: GPTQ g_idx[${k}] = ${g} is outside 0..${G - 1}`);
    if (g !== Math.floor(k / gs)) sequential = false;
  }
  const scalesF32 = f16ArrayToF32(w.scales);
  // Columns per chunk: qweight's K/8 words per column is the largest per-column array.
  const per0 = rowsPerChunk(Math.max(K / 8, G) * 4, ctx.weightChunk, "GPTQ column");
  const per = per0 >= N ? N : Math.max(8, per0 - (per0 % 8));
  const chunks: GptqChunk[] = [];
  for (let n0 = 0; n0 < N; n0 += per) {
    const nc = Math.min(per, N - n0);
    const q = new Uint32Array((K / 8) * nc);
    for (let r = 0; r < K / 8; r++) q.set(new Uint32Array(w.qweight.buffer, w.qweight.byteOffset + (r * N + n0) * 4, nc), r * nc);
    const s = new Float32Array(G * nc);
    const z = new Float32Array(G * nc);
    for (let g = 0; g < G; g++) {
      s.set(scalesF32.subarray(g * N + n0, g * N + n0 + nc), g * nc);
      for (let j = 0; j < nc; j++) {
        const o = n0 + j;
        z[g * nc + j] = ((w.qzeros[g * (N / 8) + (o >> 3)] >>> (4 * (o & 7))) & 15) + 1;
      }
    }
    chunks.push({
      n0, nc,
      qweight: ctx.weightBuffer(q, "qweight"),
      scales: ctx.weightBuffer(s, "scales"),
      zp: ctx.weightBuffer(z, "zeros"),
    });
  }
  const gIdx = ctx.weightBuffer(Uint32Array.from(w.gIdx), "g_idx");
  return new GpuLinear(K, N, "gptq", 0, [], chunks, gIdx, gs, sequential, bias);
}

/** Whether `encodeMatmul` with `glu` covers this layer at M rows: the GEMVs that stage x. */
export function gluFusable(lin: GpuLinear, M: number): boolean {
  return M === 1 && (lin.kind === "gptq" || vec4Rows(lin));
}

/** Dense rows of whole 16-byte words: dense_gemv4's vec4 loads. */
function vec4Rows(lin: GpuLinear): boolean {
  return (lin.inFeatures * (lin.dtype === 0 ? 4 : 2)) % 16 === 0;
}

/**
 * For a dense M > 1 product on the matrix units (the device has them, the layer fits the
 * backend's variant or the forced one, and no FMA kernel is forced): the kernel and x split into
 * f16 hi/lo halves (mma.ts). Null where the FMA kernels run instead.
 */
function mmaSplit(ctx: GpuContext, lin: GpuLinear, M: number, xb: PooledBuffer, xOff: number): { kernel: MmaKernel; x: SplitOperand } | null {
  const forced = ctx.denseGemm;
  const kernel = forced === undefined ? ctx.mmaKernel : mmaKernelNamed(forced);
  if (!kernel) return null;
  if (forced && kernel.sharedBytes > ctx.maxWorkgroupStorage) {
    throw new Error(`matmul: ${kernel.name} needs ${kernel.sharedBytes} bytes of workgroup memory, the device offers ${ctx.maxWorkgroupStorage}`);
  }
  if (!(ctx.matrixF16 && mmaFits(lin, kernel))) {
    if (forced) throw new Error(`matmul: ${kernel.name} cannot run ${lin.inFeatures}→${lin.outFeatures} (${ctx.matrixF16 ? "dtype or shape" : "no f16 subgroup matrices on this device"})`);
    return null;
  }
  const K = lin.inFeatures;
  return { kernel, x: splitOperand(ctx, kernel, "a", xb, xOff, 1, M, K, { bs: 0, rs: K, cs: 1 }) };
}

/**
 * y[M, N] = x[M, K]·Wᵀ + b into `out` (elements out.offset..). `x` is `M·K` values from element
 * `xOff` of `xb`; `dummy` is bound where a layer has no bias. With `glu` (only where
 * `gluFusable`), x is [a | b], 2K values, and the product is of swiglu_gate(a, b) (common.wgsl).
 */
export function encodeMatmul(
  ctx: GpuContext, lin: GpuLinear, M: number, xb: PooledBuffer, xOff: number, ob: PooledBuffer, oOff: number, dummy: PooledBuffer,
  glu = false,
): void {
  const K = lin.inFeatures, N = lin.outFeatures;
  const bias = lin.bias ?? dummy;
  const hasBias = lin.bias ? 1 : 0;
  if (glu && !gluFusable(lin, M)) throw new Error(`matmul: no fused SwiGLU input for a ${lin.kind} layer at M = ${M}`);
  const g = glu ? 1 : 0;
  if (lin.kind === "dense") {
    const mma = M > 1 ? mmaSplit(ctx, lin, M, xb, xOff) : null;
    for (const c of lin.dense) {
      if (M === 1 && vec4Rows(lin)) {
        // Rows of whole 16-byte words: vec4 loads (each chunk is its own buffer, so rows start aligned).
        ctx.dispatch("dense_gemv4", [N, K, c.nc, c.n0, xOff, oOff, lin.dtype, hasBias, g], 0, [xb, c.weight, bias, ob],
          ctx.grid(c.nc, DENSE_GEMV4_ROWS));
      } else if (M === 1) {
        ctx.dispatch("dense_gemv", [N, K, c.nc, c.n0, xOff, oOff, lin.dtype, hasBias], 0, [xb, c.weight, bias, ob], ctx.grid(c.nc, 8));
      } else if (mma) {
        encodeMma(ctx, mma.kernel, mma.x, { weight: c.weight, nc: c.nc, n0: c.n0 }, 1, { buf: ob, off: oOff, ldo: N, obs: 0 }, 1, lin.bias, dummy);
      } else {
        const kernel = ctx.denseGemm ?? denseGemmKernel(M);
        const { tile: [tm, tn], sharedBytes } = DENSE_GEMM_KERNELS[kernel];
        if (sharedBytes > ctx.maxWorkgroupStorage) {
          throw new Error(`matmul: ${kernel} needs ${sharedBytes} bytes of workgroup memory, the device offers ${ctx.maxWorkgroupStorage}`);
        }
        ctx.dispatch(kernel, [M, N, K, c.nc, c.n0, xOff, oOff, lin.dtype, hasBias], 0, [xb, c.weight, bias, ob],
          [Math.ceil(c.nc / tn), Math.ceil(M / tm)]);
      }
    }
    if (mma) releaseSplit(ctx, mma.x);
    return;
  }
  const seq = lin.sequentialGroups ? 1 : 0;
  for (const c of lin.gptq) {
    const bufs = [xb, c.qweight, c.scales, c.zp, lin.gIdx!, bias, ob];
    if (M === 1) {
      ctx.dispatch("gptq_gemv", [N, K, c.nc, c.n0, lin.groupSize, seq, xOff, oOff, hasBias, g], 0, bufs, [Math.ceil(c.nc / GPTQ_GEMV_COLUMNS)]);
    } else {
      ctx.dispatch("gptq_gemm", [M, N, K, c.nc, c.n0, lin.groupSize, seq, xOff, oOff, hasBias], 0, bufs,
        [Math.ceil(c.nc / 64), Math.ceil(M / 8)]);
    }
  }
}
