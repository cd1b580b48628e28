// Products on the matrix units (subgroup matrices; tensor cores on NVIDIA): the operand split
// (split_f16.wgsl) and the product (dense_gemm_mma.wgsl) as the linears and attention use them.
// Both kernels take strided, batched views, so attention's q·kᵀ and p·v need no copies: only
// the splits, which the matrix units need anyway (they multiply f16, not f32).
/// <reference types="@webgpu/types" />
import type { Binding, GpuContext, PooledBuffer } from "./context.js";

/** dense_gemm_mma.wgsl's output tile (rows of A × rows of B) and its k step. */
export const MMA_TILE = { m: 32, n: 64, k: 16 } as const;

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

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
 * into f16 hi/lo halves, rows padded to `rowTile`, columns to the k step (zeros).
 */
export function splitOperand(
  ctx: GpuContext, src: Binding, off: number, batches: number, rows: number, cols: number,
  strides: { bs: number; rs: number; cs: number }, rowTile: number,
): SplitOperand {
  const rp = roundUp(rows, rowTile), cp = roundUp(cols, MMA_TILE.k);
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
 * chunk [nc, K] (one batch; nc a multiple of MMA_TILE.n).
 */
export function encodeMma(
  ctx: GpuContext, a: SplitOperand, b: SplitOperand | { weight: GPUBuffer; nc: number; n0: number }, batches: number,
  out: MmaOut, alpha: number, bias: Binding | null, dummy: PooledBuffer,
): void {
  const split = "hl" in b;
  const nc = split ? b.rows : b.nc;
  const np = split ? b.rp : b.nc;
  if (split && b.cp !== a.cp) throw new Error(`mma: operands disagree on K (${a.cp} and ${b.cp})`);
  if (np % MMA_TILE.n !== 0 || a.rp % MMA_TILE.m !== 0) throw new Error(`mma: tiles not whole (rows ${a.rp}, columns ${np})`);
  ctx.dispatch("dense_gemm_mma",
    [a.rows, nc, a.cp, a.rp, np, split ? 0 : b.n0, out.off, out.ldo, out.obs, bias ? 1 : 0, split ? 1 : 0, alpha],
    1 << 11 /* alpha: f32 */,
    [a.hl, a.sc, split ? b.hl : b.weight, split ? b.sc : dummy, bias ?? dummy, out.buf],
    [np / MMA_TILE.n, a.rp / MMA_TILE.m, batches]);
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
  ctx: GpuContext, q: HeadsView, k: HeadsView, v: HeadsView, out: HeadsView, scores: PooledBuffer,
  dims: { Tq: number; Tk: number; H: number; D: number; hc: number }, causal: number, pos0: number, scale: number, dummy: PooledBuffer,
): void {
  const { Tq, Tk, H, D, hc } = dims;
  const row = H * D;
  for (let h0 = 0; h0 < H; h0 += hc) {
    const n = Math.min(hc, H - h0);
    const qs = splitOperand(ctx, q.buf, q.off + h0 * D, n, Tq, D, { bs: D, rs: row, cs: 1 }, MMA_TILE.m);
    const ks = splitOperand(ctx, k.buf, k.off + h0 * D, n, Tk, D, { bs: D, rs: row, cs: 1 }, MMA_TILE.n);
    encodeMma(ctx, qs, ks, n, { buf: scores, off: 0, ldo: n * Tk, obs: Tk }, scale, null, dummy);
    releaseSplit(ctx, qs);
    releaseSplit(ctx, ks);
    ctx.dispatch("att_softmax", [Tq * n, Tk, n, causal, pos0], 0, [scores], ctx.grid(Tq * n, 1));
    const ps = splitOperand(ctx, scores, 0, n, Tq, Tk, { bs: Tk, rs: n * Tk, cs: 1 }, MMA_TILE.m);
    const vt = splitOperand(ctx, v.buf, v.off + h0 * D, n, D, Tk, { bs: D, rs: 1, cs: row }, MMA_TILE.n);
    encodeMma(ctx, ps, vt, n, { buf: out.buf, off: out.off + h0 * D, ldo: row, obs: D }, 1, null, dummy);
    releaseSplit(ctx, ps);
    releaseSplit(ctx, vt);
  }
}
