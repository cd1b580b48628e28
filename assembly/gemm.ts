// Dense GEMM: C[M, Np] = A[M, K] · Wᵀ + bias, with W prepacked into column panels.
//
// Packing (done once, at linear() time, in src/ops/wasm/pack.ts)
//   W [N, K] is cut into panels of NR = 8 output columns. Panel p stores, for k = 0..K−1, the eight
//   weights W[8p + j, k] (j = 0..7) next to each other:   panel[p][k][j].
//   One k step of the micro-kernel therefore reads 8 consecutive weights = two v128 loads.
//   Columns past N are zero; C has Np = 8·ceil(N/8) columns and the wrapper drops the padding.
//   Weights may be f32 (mode 0), f16 (mode 1), bf16 (mode 2) or GPTQ int4 (mode 3, see
//   gemv_q4.ts for its record layout). 16-bit and int4 panels are converted to f32, one KC×8 block
//   at a time, into a per-thread scratch block that stays in L1, then run the same f32 micro-kernel:
//   the conversion is paid once per block of MC rows, not once per multiply-add.
//
// Register tiling (micro-kernel)
//   A 4×8 tile of C lives in 8 v128 accumulators (4 rows × 2 vectors of 4 columns). Per k:
//   2 loads of W, 4 broadcast loads of A (v128.load32_splat), 8 multiply-adds. With the 4-cycle
//   FMA latency and 2 FMA pipes, 8 independent accumulators are exactly what keeps the pipes full;
//   8 accumulators + 2 W vectors + 1 A broadcast = 11 of the 16 xmm registers V8 can use.
//   The driver runs 6-row tiles first (tile6x8: 12 accumulators + 2 + 1 = 15, every register V8
//   allocates — it keeps xmm15 as scratch): 8 loads per 12 multiply-adds instead of 6 per 8.
//   Measured on 2 threads (Xeon, 1024 rows, f16 weights): 1664→8192 from 68–71 to 87–90
//   GFLOP/s, 8192→1664 from 84 to 88, 1664→1664 from 81–88 to 90; then 4-row and 1-row tails.
//
// Cache blocking
//   K is cut in blocks of KC (8 KiB of f32 panel: KC·8·4 bytes, L1-resident while every row of the
//   M block streams past it); M in blocks of MC rows so that the A block (MC·KC·4 bytes) stays in
//   L2 while all panels of this thread pass over it. The first K block starts the accumulators
//   from the bias; later blocks start from C. So every output's summation order is: bias, then
//   k = 0, 1, 2, … in order, independent of which thread owns the panel — results are bit-identical
//   for any thread count, because threads split the work by panels (output columns) only.
import { madd } from "./simd";
import { C_F16_EM, C_F16_SIGN, C_F16_SCALE, C_F16_INF, C_F32_INF } from "./consts";
import { Q4_REC_EXTRA, q4_block_groups, q4_rec } from "./gemv_q4";

/** C[4 rows, 8 cols] (+)= A[4 rows, kc] · panel[kc, 8]. Row r of A at a + r·lda; C rows ldc apart. */
// @ts-ignore: decorator
@inline export function tile4x8(a: usize, lda: usize, b: usize, kc: i32, c: usize, ldc: usize, init: usize): void {
  // `init` is the bias (first K block) or C itself (later blocks): one code path for both.
  const a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda;
  const i0 = init, i1 = init + ldc, i2 = init + 2 * ldc, i3 = init + 3 * ldc;
  const biasRow = init != c; // bias: the same 8 values for all four rows
  let c00 = v128.load(i0), c01 = v128.load(i0, 16);
  let c10 = biasRow ? c00 : v128.load(i1), c11 = biasRow ? c01 : v128.load(i1, 16);
  let c20 = biasRow ? c00 : v128.load(i2), c21 = biasRow ? c01 : v128.load(i2, 16);
  let c30 = biasRow ? c00 : v128.load(i3), c31 = biasRow ? c01 : v128.load(i3, 16);
  let off: usize = 0;
  const end: usize = <usize>kc << 2;
  for (; off < end; off += 4) {
    const b0 = v128.load(b), b1 = v128.load(b, 16);
    let x = v128.load32_splat(a0 + off);
    c00 = madd(x, b0, c00);
    c01 = madd(x, b1, c01);
    x = v128.load32_splat(a1 + off);
    c10 = madd(x, b0, c10);
    c11 = madd(x, b1, c11);
    x = v128.load32_splat(a2 + off);
    c20 = madd(x, b0, c20);
    c21 = madd(x, b1, c21);
    x = v128.load32_splat(a3 + off);
    c30 = madd(x, b0, c30);
    c31 = madd(x, b1, c31);
    b += 32;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c + ldc, c10); v128.store(c + ldc, c11, 16);
  v128.store(c + 2 * ldc, c20); v128.store(c + 2 * ldc, c21, 16);
  v128.store(c + 3 * ldc, c30); v128.store(c + 3 * ldc, c31, 16);
}

/** C[6 rows, 8 cols] (+)= A[6 rows, kc] · panel[kc, 8]: tile4x8 with two more rows (12 accumulators). */
// @ts-ignore: decorator
@inline export function tile6x8(a: usize, lda: usize, b: usize, kc: i32, c: usize, ldc: usize, init: usize): void {
  const biasRow = init != c;
  const i1 = biasRow ? init : init + ldc, i2 = biasRow ? init : init + 2 * ldc, i3 = biasRow ? init : init + 3 * ldc;
  const i4 = biasRow ? init : init + 4 * ldc, i5 = biasRow ? init : init + 5 * ldc;
  let c00 = v128.load(init), c01 = v128.load(init, 16);
  let c10 = v128.load(i1), c11 = v128.load(i1, 16);
  let c20 = v128.load(i2), c21 = v128.load(i2, 16);
  let c30 = v128.load(i3), c31 = v128.load(i3, 16);
  let c40 = v128.load(i4), c41 = v128.load(i4, 16);
  let c50 = v128.load(i5), c51 = v128.load(i5, 16);
  let a0 = a;
  const a3 = a + 3 * lda;
  const end: usize = a + (<usize>kc << 2);
  for (; a0 < end; a0 += 4) {
    const b0 = v128.load(b), b1 = v128.load(b, 16);
    let x = v128.load32_splat(a0);
    c00 = madd(x, b0, c00);
    c01 = madd(x, b1, c01);
    x = v128.load32_splat(a0 + lda);
    c10 = madd(x, b0, c10);
    c11 = madd(x, b1, c11);
    x = v128.load32_splat(a0 + 2 * lda);
    c20 = madd(x, b0, c20);
    c21 = madd(x, b1, c21);
    const a3k = a0 - a + a3;
    x = v128.load32_splat(a3k);
    c30 = madd(x, b0, c30);
    c31 = madd(x, b1, c31);
    x = v128.load32_splat(a3k + lda);
    c40 = madd(x, b0, c40);
    c41 = madd(x, b1, c41);
    x = v128.load32_splat(a3k + 2 * lda);
    c50 = madd(x, b0, c50);
    c51 = madd(x, b1, c51);
    b += 32;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c + ldc, c10); v128.store(c + ldc, c11, 16);
  v128.store(c + 2 * ldc, c20); v128.store(c + 2 * ldc, c21, 16);
  v128.store(c + 3 * ldc, c30); v128.store(c + 3 * ldc, c31, 16);
  v128.store(c + 4 * ldc, c40); v128.store(c + 4 * ldc, c41, 16);
  v128.store(c + 5 * ldc, c50); v128.store(c + 5 * ldc, c51, 16);
}

/** C[1 row, 8 cols] (+)= A[1, kc] · panel[kc, 8]; used for M tails and decode (M = 1). */
// @ts-ignore: decorator
@inline export function tile1x8(a: usize, b: usize, kc: i32, c: usize, init: usize): void {
  let c0 = v128.load(init), c1 = v128.load(init, 16);
  let off: usize = 0;
  const end: usize = <usize>kc << 2;
  for (; off < end; off += 4) {
    const x = v128.load32_splat(a + off);
    c0 = madd(x, v128.load(b), c0);
    c1 = madd(x, v128.load(b, 16), c1);
    b += 32;
  }
  v128.store(c, c0);
  v128.store(c, c1, 16);
}

/**
 * Rows [0, rows) of C (+)= A · panel[kc, 8]: 6-row tiles, then 4-row, then single rows. Row r of
 * A at a + r·lda, of C at c + r·ldc; it starts from init + r·initStride — stride 0 for the same 8
 * values in every row (a bias, or zeros), ldc for C itself (a later K block).
 */
// @ts-ignore: decorator
@inline export function tileRows(a: usize, lda: usize, b: usize, kc: i32, c: usize, ldc: usize, rows: i32, init: usize, initStride: usize): void {
  let r = 0;
  for (; r + 6 <= rows; r += 6) tile6x8(a + <usize>r * lda, lda, b, kc, c + <usize>r * ldc, ldc, init + <usize>r * initStride);
  for (; r + 4 <= rows; r += 4) tile4x8(a + <usize>r * lda, lda, b, kc, c + <usize>r * ldc, ldc, init + <usize>r * initStride);
  for (; r < rows; r++) tile1x8(a + <usize>r * lda, b, kc, c + <usize>r * ldc, init + <usize>r * initStride);
}

/**
 * f16 or bf16 panel block [kc][8] → f32 [kc][8] in dst.
 * bf16 is the top half of an f32: shift left by 16.
 * f16 → f32 exactly, for every input: move exponent+mantissa into f32 position (<< 13) and
 * multiply by 2^(127−15) — exact for normals and subnormals alike, since subnormal halves are
 * normal f32s; inf/NaN (exponent all ones) get the f32 all-ones exponent; the sign is copied.
 */
function convert16(src: usize, dst: usize, kc: i32, mode: i32): void {
  const n = kc; // one v128 of 8 halves per k
  if (mode == 2) {
    for (let k = 0; k < n; k++) {
      const h = v128.load(src);
      v128.store(dst, i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
      v128.store(dst, i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
      src += 16;
      dst += 32;
    }
    return;
  }
  const em = v128.load(C_F16_EM), sign = v128.load(C_F16_SIGN), scale = v128.load(C_F16_SCALE);
  const infT = v128.load(C_F16_INF), inf32 = v128.load(C_F32_INF);
  for (let k = 0; k < n; k++) {
    const h = v128.load(src);
    for (let half = 0; half < 2; half++) {
      const x = half == 0 ? i32x4.extend_low_i16x8_u(h) : i32x4.extend_high_i16x8_u(h);
      const m = i32x4.shl(v128.and(x, em), 13);
      let f = f32x4.mul(m, scale);
      f = v128.bitselect(v128.or(m, inf32), f, i32x4.ge_s(m, infT));
      f = v128.or(f, i32x4.shl(v128.and(x, sign), 16));
      v128.store(dst + (<usize>half << 4), f);
    }
    src += 16;
    dst += 32;
  }
}

/**
 * Put panel p's listed halves with k in [pc, pc + kc) back into its converted block [kc][8]: the
 * block then holds exactly the weights, as if they had been converted in place (the list is
 * sorted by k; a panel has a few dozen entries in a 4096-row lm_head).
 */
function restoreListed(offs: usize, ents: usize, p: i32, pc: i32, kc: i32, dst: usize): void {
  const e = load<u32>(offs + (<usize>p << 2), 4); // the panel's entries end here
  const first = <u32>pc << 3, end = <u32>(pc + kc) << 3;
  // The first entry with k ≥ pc, by bisection (keys k·8 + column sort as k does).
  let lo = load<u32>(offs + (<usize>p << 2)), hi = e;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (load<u32>(ents + (<usize>mid << 3)) < first) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < e; i++) {
    const key = load<u32>(ents + (<usize>i << 3));
    if (key >= end) break;
    store<f32>(dst + (<usize>(key - first) << 2), load<f32>(ents + (<usize>i << 3), 4));
  }
}

/**
 * GPTQ group → f32 panel block [gs][8]: W[k, j] = scale[j]·(q[k, j] − z′[j]) exactly as the
 * dequantisation formula (scale × small integer, one rounding), from two column-quad records.
 */
function dequantQ4(r0: usize, r1: usize, gs: i32, dst: usize): void {
  const mask = i32x4.splat(15); // used once per call, outside the loops
  for (let h = 0; h < 2; h++) {
    const rec = h == 0 ? r0 : r1;
    const sc = v128.load(rec + (<usize>gs << 1));
    const zp = f32x4.convert_i32x4_s(v128.load(rec + (<usize>gs << 1), 16));
    let d = dst + (<usize>h << 4);
    for (let o = 0; o < gs >> 3; o++) {
      const v = v128.load(rec + (<usize>o << 4));
      for (let j = 0; j < 8; j++) {
        const q = f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, j * 4), mask));
        v128.store(d, f32x4.mul(sc, f32x4.sub(q, zp)));
        d += 32;
      }
    }
  }
}

/**
 * The GEMM driver for one thread: panels [p0, p1) of C, all rows.
 *   mode 0 f32 panels, 1 f16, 2 bf16, 3 GPTQ int4 (kc0 must then equal the group size)
 *   x: A [M, K] f32;  w: packed weights;  bias: f32 [Np];  c: C [M, ldc] f32
 *   scratch: per-thread conversion blocks of kc0·8 f32, thread `tid` uses scratch + tid·kc0·32
 *   offs, ents: an f16 weight's table of subnormal halves (stored as 0 in the panels; offs = 0:
 *   none; layout in pack.ts), written back into each converted block (restoreListed).
 */
export function gemm(
  mode: i32, x: usize, M: i32, K: i32, w: usize, bias: usize, c: usize, ldc: i32,
  kc0: i32, mc: i32, scratch: usize, offs: usize, ents: usize, p0: i32, p1: i32, tid: i32,
): void {
  const lda: usize = <usize>K << 2;
  const ldcB: usize = <usize>ldc << 2;
  const mine = scratch + <usize>tid * (<usize>kc0 << 5);
  const G = K / kc0; // GPTQ: number of groups
  const rec: usize = (<usize>kc0 << 1) + Q4_REC_EXTRA; // GPTQ: bytes per (column quad, group)
  for (let ic = 0; ic < M; ic += mc) {
    const mEnd = min(ic + mc, M);
    for (let pc = 0; pc < K; pc += kc0) {
      const kc = min(kc0, K - pc);
      for (let p = p0; p < p1; p++) {
        let b: usize;
        if (mode == 0) {
          b = w + <usize>p * (<usize>K << 5) + (<usize>pc << 5);
        } else if (mode == 3) {
          const g = pc / kc0, nq = ldc >> 2, gb = q4_block_groups(kc0);
          dequantQ4(q4_rec(w, 2 * p, g, G, nq, gb, rec), q4_rec(w, 2 * p + 1, g, G, nq, gb, rec), kc0, mine);
          b = mine;
        } else {
          convert16(w + <usize>p * (<usize>K << 4) + (<usize>pc << 4), mine, kc, mode);
          if (offs != 0) restoreListed(offs, ents, p, pc, kc, mine);
          b = mine;
        }
        const cp = c + (<usize>p << 5);
        const bp = bias + (<usize>p << 5);
        const ci = cp + <usize>ic * ldcB;
        tileRows(x + <usize>ic * lda + (<usize>pc << 2), lda, b, kc, ci, ldcB, mEnd - ic, pc == 0 ? bp : ci, pc == 0 ? 0 : ldcB);
      }
    }
  }
}
