// Products on the matrix units (subgroup matrices; tensor cores on NVIDIA): the operand split
// (split_f16.wgsl) and the product (dense_gemm_mma.wgsl, or dense_gemm_mma8.wgsl: MMA_KERNELS) as
// the linears and attention use them.
// Both kernels take strided, batched views, so attention's q·kᵀ and p·v need no copies: only
// the splits, which the matrix units need anyway (they multiply f16, not f32).
/// <reference types="@webgpu/types" />
import type { Binding, GpuContext, PooledBuffer } from "./context.js";

/**
 * A matrix-unit GEMM kernel: its shader, output tile (rows of A × rows of B) and k step, its
 * workgroup size and the workgroup memory it declares (bytes). Both take the same parameters and
 * bindings; the tile decides the operands' padding (splitDims), the grid (encodeMma) and which
 * weight chunks fit (mmaWeightFits). The backend runs one variant (WebGpuDeviceOptions.mmaKernel).
 */
export interface MmaKernel {
  readonly variant: MmaVariant;
  readonly name: "dense_gemm_mma" | "dense_gemm_mma8";
  readonly tile: { readonly m: number; readonly n: number; readonly k: number };
  readonly workgroupSize: number;
  readonly sharedBytes: number;
  /** The shader also binds B's buffer as f16 scalars (binding 7), for fragments it loads from storage. */
  readonly bViewF16?: boolean;
}

export const MMA_VARIANTS = ["1sg", "8sg"] as const;
export type MmaVariant = (typeof MMA_VARIANTS)[number];

export const MMA_KERNELS: Readonly<Record<MmaVariant, MmaKernel>> = {
  // One subgroup per workgroup, fragments loaded straight from storage (16–23 TFLOP/s on an H200).
  "1sg": { variant: "1sg", name: "dense_gemm_mma", tile: { m: 32, n: 64, k: 16 }, workgroupSize: 32, sharedBytes: 32 * 64 * 4 },
  // Eight subgroups per 128 × 128 tile sharing each k step's operand slices through workgroup
  // memory: two buffers of A hi/lo and B slices in rows of 24 f16 (2 · (2·128·24 + 128·24) f16)
  // and the block sums in rounds of one 16 × 16 matrix per subgroup (8 · 256 f32).
  "8sg": {
    variant: "8sg", name: "dense_gemm_mma8", tile: { m: 128, n: 128, k: 16 }, workgroupSize: 256,
    sharedBytes: 2 * 2 * (2 * 128 * 24 + 128 * 24) + 4 * 8 * 256, bViewF16: true,
  },
};

/** The variant whose shader is `name`, if any (a forced dense GEMM kernel may name one). */
export function mmaKernelNamed(name: string): MmaKernel | undefined {
  return Object.values(MMA_KERNELS).find((k) => k.name === name);
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * The padded sizes of a split operand for `kernel`: rows to the tile's m (the left operand, A)
 * or n (the right one, B: rows of B are output columns), columns to the k step.
 */
export function splitDims(kernel: MmaKernel, side: "a" | "b", rows: number, cols: number): { rp: number; cp: number } {
  return { rp: roundUp(rows, side === "a" ? kernel.tile.m : kernel.tile.n), cp: roundUp(cols, kernel.tile.k) };
}

/** Whether `kernel` can multiply by an f16 weight of K inputs held in chunks of `widths` output rows. */
export function mmaWeightFits(kernel: MmaKernel, K: number, widths: readonly number[]): boolean {
  return K % kernel.tile.k === 0 && widths.every((nc) => nc % kernel.tile.n === 0);
}

/**
 * Rows per chunk of an f16 weight split over several bindings: `per` rounded down to whole tiles
 * of the widest variant that it holds (128 rows serve both variants), so that the matrix-unit
 * kernels can run every chunk; unchanged below 64 rows (the FMA kernels take any width).
 */
export function mmaChunkRows(per: number): number {
  for (const n of [...new Set(Object.values(MMA_KERNELS).map((k) => k.tile.n))].sort((a, b) => b - a)) {
    if (per >= n) return per - (per % n);
  }
  return per;
}

/** A split operand: `batches` × [rp, cp] hi and lo halves (f16) and a scale per row. */
export interface SplitOperand {
  readonly hl: PooledBuffer;
  readonly sc: PooledBuffer;
  readonly rows: number;
  readonly rp: number;
  readonly cp: number;
}

/**
 * Split the batch of f32 matrices x[b][r][c] = src[off + b·bs + r·rs + c·cs] (r < rows, c < cols)
 * into f16 hi/lo halves, padded with zeros as `kernel` needs its left (`side` "a") or right ("b")
 * operand (splitDims).
 */
export function splitOperand(
  ctx: GpuContext, kernel: MmaKernel, side: "a" | "b", src: Binding, off: number, batches: number, rows: number, cols: number,
  strides: { bs: number; rs: number; cs: number },
): SplitOperand {
  const { rp, cp } = splitDims(kernel, side, rows, cols);
  const hl = ctx.take(batches * 2 * rp * cp * 2);
  const sc = ctx.take(batches * rp * 4);
  ctx.dispatch("split_f16", [rows, cols, rp, cp, off, strides.bs, strides.rs, strides.cs], 0, [src, hl, sc], [rp, batches]);
  return { hl, sc, rows, rp, cp };
}

export function releaseSplit(ctx: GpuContext, s: SplitOperand): void {
  ctx.give(s.hl);
  ctx.give(s.sc);
}

/** Where the product goes: element off + b·obs + m·ldo + n0 + j of `buf`. */
export interface MmaOut {
  readonly buf: Binding;
  readonly off: number;
  readonly ldo: number;
  readonly obs: number;
}

/**
 * out[b][m][n0 + j] = (A[b] · B[b]ᵀ)[m][j] · alpha (+ bias[n0 + j]) for m < a.rows, j < nc,
 * over `batches`. B is a split operand (rows of B = columns of the output) or an f16 weight
 * chunk [nc, K] (one batch; nc a multiple of kernel.tile.n). Both operands padded for `kernel`.
 */
export function encodeMma(
  ctx: GpuContext, kernel: MmaKernel, a: SplitOperand, b: SplitOperand | { weight: GPUBuffer; nc: number; n0: number }, batches: number,
  out: MmaOut, alpha: number, bias: Binding | null, dummy: PooledBuffer,
): void {
  const split = "hl" in b;
  const nc = split ? b.rows : b.nc;
  const np = split ? b.rp : b.nc;
  if (split && b.cp !== a.cp) throw new Error(`mma: operands disagree on K (${a.cp} and ${b.cp})`);
  const { m: tm, n: tn, k: tk } = kernel.tile;
  if (np % tn !== 0 || a.rp % tm !== 0 || a.cp % tk !== 0) {
    throw new Error(`mma: ${kernel.name} needs whole ${tm} × ${tn} tiles and K % ${tk} == 0 (rows ${a.rp}, columns ${np}, K ${a.cp})`);
  }
  ctx.dispatch(kernel.name,
    [a.rows, nc, a.cp, a.rp, np, split ? 0 : b.n0, out.off, out.ldo, out.obs, bias ? 1 : 0, split ? 1 : 0, alpha],
    1 << 11 /* alpha: f32 */,
    [a.hl, a.sc, split ? b.hl : b.weight, split ? b.sc : dummy, bias ?? dummy, out.buf, ...(kernel.bViewF16 ? [split ? b.hl : b.weight] : [])],
    [np / tn, a.rp / tm, batches]);
}

/** A [T, H, D] tensor in a buffer, from element `off`. */
export interface HeadsView {
  readonly buf: Binding;
  readonly off: number;
}

/**
 * Attention on the matrix units, `hc` heads per pass (the caller sizes `scores`, [Tq, hc, Tk]
 * f32): s = (q·kᵀ)·scale per head (q and k split per row), softmax in place (att_softmax.wgsl:
 * the causal mask, max-subtracted exp, normalised), then o = p·v with p split per row and v split
 * as vᵀ (per row of vᵀ, i.e. per output column: its scale factors out of the sum over keys).
 * Same attention as att_scores + att_softmax + att_pv, products reordered by the hardware.
 */
export function encodeAttention(
  ctx: GpuContext, kernel: MmaKernel, q: HeadsView, k: HeadsView, v: HeadsView, out: HeadsView, scores: PooledBuffer,
  dims: { Tq: number; Tk: number; H: number; D: number; hc: number }, causal: number, pos0: number, scale: number, dummy: PooledBuffer,
): void {
  const { Tq, Tk, H, D, hc } = dims;
  const row = H * D;
  for (let h0 = 0; h0 < H; h0 += hc) {
    const n = Math.min(hc, H - h0);
    const qs = splitOperand(ctx, kernel, "a", q.buf, q.off + h0 * D, n, Tq, D, { bs: D, rs: row, cs: 1 });
    const ks = splitOperand(ctx, kernel, "b", k.buf, k.off + h0 * D, n, Tk, D, { bs: D, rs: row, cs: 1 });
    encodeMma(ctx, kernel, qs, ks, n, { buf: scores, off: 0, ldo: n * Tk, obs: Tk }, scale, null, dummy);
    releaseSplit(ctx, qs);
    releaseSplit(ctx, ks);
    ctx.dispatch("att_softmax", [Tq * n, Tk, n, causal, pos0], 0, [scores], ctx.grid(Tq * n, 1));
    const ps = splitOperand(ctx, kernel, "a", scores, 0, n, Tq, Tk, { bs: Tk, rs: n * Tk, cs: 1 });
    const vt = splitOperand(ctx, kernel, "b", v.buf, v.off + h0 * D, n, D, Tk, { bs: D, rs: 1, cs: row });
    encodeMma(ctx, kernel, ps, vt, n, { buf: out.buf, off: out.off + h0 * D, ldo: row, obs: D }, 1, null, dummy);
    releaseSplit(ctx, ps);
    releaseSplit(ctx, vt);
  }
}
