// GPTQ int4 × activations as three 8-bit digits ("i8x3", the relaxed build's default): the decode
// GEMV gemv_q4_i8x3 and the prefill GEMM gemm_q4_i8x3, over the same weight records as gemv_q4.ts
// (Q4_REC_EXTRA, q4_rec; layout there).
//
// Why 8-bit digits
//   i32x4.relaxed_dot_i8x16_i7x16_add_s multiplies 16 signed bytes by 16 bytes in [0, 127], sums
//   each group of four products and adds the result to an i32 accumulator: one instruction for 16
//   multiply-accumulates (vpdpbusd with AVX-VNNI, sdot on Arm), against 8 for i32x4.dot_i16x8_s
//   plus its separate add. Measured here (Zen 5, 1 thread, 8 independent chains): 115 GMAC/s
//   against 59 GMAC/s for dot_i16x8_s + add (bench/bench.ts, dot_i8_peak / dot_i16_peak).
//   GPTQ nibbles (0..15) are valid i7 operands, so the relaxed instruction is deterministic here.
//   One byte of activation is too coarse, so each activation goes in as three base-256 digits.
//
// Quantisation (q4_quantize_digits), per group of gs inputs
//   sa = max|x| / QMAX, q = round(x / sa) ∈ [−QMAX, QMAX], QMAX = 127·(2^16 + 2^8 + 1) = 8355711,
//   q = d2·2^16 + d1·2^8 + d0 with balanced digits d_l ∈ [−128, 127] (d0 = ((q + 128) & 255) − 128,
//   then the same on (q − d0) >> 8). That keeps x to 2^-23 of its group maximum (24 bits): the
//   int16 "fast" path keeps 2^-15, f32 itself 2^-24 of each element.
//
// Unpacking: 3 ops for 32 weights, no widening
//   A record word (one i32 lane = one column) holds nibbles k0..k7 at bits 4j. `v & 0x0F0F0F0F` gives
//   the bytes (k0, k2, k4, k6) of each column, `(v >> 4) & 0x0F0F0F0F` the bytes (k1, k3, k5, k7).
//   The dot sums the four bytes of each i32 lane, so each lane stays one column's sum. The
//   activations are stored per octet as, for each digit, the bytes (a0, a2, a4, a6, a1, a3, a5, a7)
//   (24 bytes per octet) and broadcast with v128.load32_splat. Per 32 weights: 1 load, 3 ALU ops,
//   6 broadcast loads, 6 dot-accumulates (2 per digit: even and odd k, separate chains).
//
// Arithmetic per (column, group), exact in i32 (groups up to 1024 rows)
//   P_l = Σ_k d_l,k·q_k (two chains per digit), S_l = Σ_k d_l,k:
//     |P_l| ≤ gs·128·15, |S_l| ≤ gs·128, z′ ≤ 16.
//   H0 = P0 − z′·S0,  A = 2^8·P2 + P1 − z′·(2^8·S2 + S1)  (|A| ≤ 2^8·gs·128·31 < 2^31 for gs ≤ 1024)
//   Σ_k q_k·(n_k − z′) = 2^8·A + H0, so  Σ_k x_k·(n_k − z′) = (sa·2^8)·(A + H0·2^-8):
//   y += f32(A) + 2^-8·f32(H0) (one fused multiply-add), times scale_w·(sa·2^8).
//
// The plain SIMD128 build has no relaxed dot; `dot_i8_i7_add` (simd.ts) computes the same integers
// with i16 widening and dot_i16x8_s (slower; that build keeps gemv_q4_i16x2 as its default).
import { dot_i8_i7_add, madd } from "./simd";
import { C_BYTE_NIB, C_INV_256 } from "./consts";
import { Q4_REC_EXTRA, q4_block_groups, q4_rec } from "./gemv_q4";

/** Largest |q| = 127·(2^16 + 2^8 + 1): symmetric, and the top digit stays in [−128, 127]. */
export const DIGITS_QMAX: i32 = 127 * (65536 + 256 + 1);
/** Activation bytes per octet of inputs: 3 digits × 8 bytes. */
const OCT_BYTES: usize = 24;

/**
 * Rows of x [M, K] → act [M][K/8][3 digits][8 bytes], sums [M][G][2] i32 (S0, 2^8·S2 + S1),
 * scale [M][G] f32 (sa·2^8). O(M·K), on the calling thread (decode: one row is ~20 µs);
 * q4_quantize_digits_t is the thread-pool form that prefill uses.
 */
export function q4_quantize_digits(x: usize, M: i32, K: i32, gs: i32, act: usize, sums: usize, scale: usize): void {
  q4_quantize_digits_t(x, K, gs, act, sums, scale, 0, M, 0);
}

/** Rows [m0, m1) of q4_quantize_digits: the thread-pool form, for prefill (16 ms on one thread at 300 × 11008). */
export function q4_quantize_digits_t(x: usize, K: i32, gs: i32, act: usize, sums: usize, scale: usize, m0: i32, m1: i32, tid: i32): void {
  const G = K / gs;
  for (let m = m0; m < m1; m++) quantize_row(x + (<usize>m * K << 2), K, gs, act + <usize>m * K * 3, sums + (<usize>m * G << 3), scale + (<usize>m * G << 2));
}

function quantize_row(x: usize, K: i32, gs: i32, act: usize, sums: usize, scale: usize): void {
  const G = K / gs;
  for (let g = 0; g < G; g++) {
    const xg = x + (<usize>(g * gs) << 2);
    let amax: f32 = 0;
    for (let k = 0; k < gs; k++) amax = max(amax, abs(load<f32>(xg + (<usize>k << 2))));
    const sa: f32 = amax / <f32>DIGITS_QMAX;
    // Quantise against exactly 1/sa (f64) of the f32 sa the kernel multiplies back with. A group
    // whose maximum is below ~1e-38 has sa = 0 (f32 underflow): it contributes 0, as an all-zero one.
    const inv: f64 = sa > 0 ? <f64>1 / <f64>sa : 0;
    store<f32>(scale + (<usize>g << 2), sa * <f32>256);
    let s0: i32 = 0, s1: i32 = 0, s2: i32 = 0;
    for (let o = 0; o < gs >> 3; o++) {
      const base = act + <usize>(g * (gs >> 3) + o) * OCT_BYTES;
      for (let j = 0; j < 8; j++) {
        let q = <i32>nearest(<f64>load<f32>(xg + (<usize>(o * 8 + j) << 2)) * inv);
        // |q| ≤ QMAX up to the rounding of inv; clamp so the digits stay in range.
        q = min(max(q, -DIGITS_QMAX), DIGITS_QMAX);
        const d0 = ((q + 128) & 255) - 128;
        const q1 = (q - d0) >> 8;
        const d1 = ((q1 + 128) & 255) - 128;
        const d2 = (q1 - d1) >> 8;
        s0 += d0;
        s1 += d1;
        s2 += d2;
        // k_j: even j to bytes 0..3, odd j to bytes 4..7 (matches the lo/hi nibble bytes).
        const slot: usize = <usize>((j & 1) << 2) + <usize>(j >> 1);
        store<i8>(base + slot, <i8>d0);
        store<i8>(base + 8 + slot, <i8>d1);
        store<i8>(base + 16 + slot, <i8>d2);
      }
    }
    store<i32>(sums + (<usize>g << 3), s0);
    store<i32>(sums + (<usize>g << 3) + 4, (s2 << 8) + s1);
  }
}

/** Finish one group for 4 columns: y += (f32(A) + 2^-8·f32(H0)) · scale_w · (sa·2^8). */
// @ts-ignore: decorator
@inline function finish(y: v128, p0: v128, p1: v128, p2: v128, zp: v128, sw: v128, sg: usize, sc: usize, inv256: v128): v128 {
  const h0 = i32x4.sub(p0, i32x4.mul(zp, v128.load32_splat(sg)));
  const hA = i32x4.sub(i32x4.add(i32x4.shl(p2, 8), p1), i32x4.mul(zp, v128.load32_splat(sg, 4)));
  const t = madd(f32x4.convert_i32x4_s(h0), inv256, f32x4.convert_i32x4_s(hA));
  return madd(t, f32x4.mul(sw, v128.load32_splat(sc)), y);
}

/**
 * One row, one column quad, G consecutive groups whose records are contiguous from r0 (one K
 * block): y + Σ_g (group g). a, sums, scale: the row's digits, sums and scales from the first group.
 * Six accumulator chains (digit × even/odd k), one dot each per octet. vpdpbusd has ~4 cycles
 * of latency at 2 per cycle, so six chains cap the loop at 75% of the dot peak (measured on one
 * core: 6 chains 87, 10 chains 121 GMAC/s). Nine or twelve chains spill (V8 allocates 15 xmm
 * registers and hoists the unpacking of unrolled octets), and restarting each octet's dots from
 * zero costs an add per digit: both measured slower.
 */
// @ts-ignore: decorator
@inline function row_quad(
  y: v128, a: usize, r0: usize, G: i32, gs: i32, sums: usize, scale: usize, nib: v128, inv256: v128,
): v128 {
  const rec: usize = (<usize>gs << 1) + Q4_REC_EXTRA;
  const zero = i32x4.splat(0);
  for (let g = 0; g < G; g++) {
    const r = r0 + <usize>g * rec;
    let e0 = zero, o0 = zero, e1 = zero, o1 = zero, e2 = zero, o2 = zero;
    const end = r + (<usize>gs << 1);
    for (let q = r; q < end; q += 16) {
      const v = v128.load(q);
      const ev = v128.and(v, nib); // (k0, k2, k4, k6) per column
      const od = v128.and(i32x4.shr_u(v, 4), nib); // (k1, k3, k5, k7)
      e0 = dot_i8_i7_add(v128.load32_splat(a), ev, e0);
      o0 = dot_i8_i7_add(v128.load32_splat(a, 4), od, o0);
      e1 = dot_i8_i7_add(v128.load32_splat(a, 8), ev, e1);
      o1 = dot_i8_i7_add(v128.load32_splat(a, 12), od, o1);
      e2 = dot_i8_i7_add(v128.load32_splat(a, 16), ev, e2);
      o2 = dot_i8_i7_add(v128.load32_splat(a, 20), od, o2);
      a += OCT_BYTES;
    }
    const sw = v128.load(end);
    const zp = v128.load(end, 16);
    y = finish(y, i32x4.add(e0, o0), i32x4.add(e1, o1), i32x4.add(e2, o2), zp, sw, sums + (<usize>g << 3), scale + (<usize>g << 2), inv256);
  }
  return y;
}

/**
 * y = x·W + bias for column quads [cq0, cq1) (this thread's share), M = 1.
 *   act/sums/scale from q4_quantize_digits; w: records; bias f32 [Np]; c: output f32 [Np];
 *   streams: how many far-apart runs of records one thread reads at once (the backend passes
 *   GEMV_Q4_STREAMS; 1 reads its quads in order).
 *
 * K block outermost: the block's digits (3·Q4_BLOCK_K bytes = 12 KiB) stay in L1 while this
 * thread's records of the block stream past (the [block][quad][group] layout). Within a block the
 * thread's quads are cut into `streams` equal runs (each a contiguous stretch of records, at 4096
 * × 11008 and 8 streams 1.6 MB apart) visited group by group in turn: group g of the first quad of
 * every run, then group g + 1, ..., then the next quad of every run. One core then has `streams`
 * sequential streams in flight instead of one, and DRAM read bandwidth per core is limited by how
 * many lines it has outstanding, not by the bus (docs/kernels.md: 8.2 → 16.9 GB/s cold on 2
 * threads). Each column still adds its groups in the same order, so the result is bit-identical;
 * y waits in c between groups (store and reload of an f32 are exact). Leftover quads (fewer than
 * `streams`) go in order.
 */
export function gemv_q4_i8x3(
  act: usize, sums: usize, scale: usize, K: i32, gs: i32, w: usize, nq: i32, bias: usize, c: usize,
  streams: i32, cq0: i32, cq1: i32, tid: i32,
): void {
  const G = K / gs;
  const rec: usize = (<usize>gs << 1) + Q4_REC_EXTRA;
  const nib = v128.load(C_BYTE_NIB);
  const inv256 = v128.load(C_INV_256);
  const gb = q4_block_groups(gs);
  const S = max(1, streams);
  const len = (cq1 - cq0) / S; // quads per run
  const tail = cq0 + S * len;
  for (let g0 = 0; g0 < G; g0 += gb) {
    const gn = min(gb, G - g0);
    const a = act + <usize>g0 * gs * 3;
    // Quad cq's records of this block: blk + cq·gn·rec, one per group (q4_rec without its modulo).
    const blk = w + <usize>g0 * nq * rec;
    const gnRec = <usize>gn * rec;
    for (let i = 0; i < len; i++) {
      for (let g = 0; g < gn; g++) {
        const ag = a + <usize>g * gs * 3;
        const sg = sums + (<usize>(g0 + g) << 3), sc = scale + (<usize>(g0 + g) << 2);
        for (let s = 0; s < S; s++) {
          const cq = cq0 + s * len + i;
          const cp = c + (<usize>cq << 4);
          const y = g0 == 0 && g == 0 ? v128.load(bias + (<usize>cq << 4)) : v128.load(cp);
          v128.store(cp, row_quad(y, ag, blk + <usize>cq * gnRec + <usize>g * rec, 1, gs, sg, sc, nib, inv256));
        }
      }
    }
    for (let cq = tail; cq < cq1; cq++) {
      const cp = c + (<usize>cq << 4);
      const y = g0 == 0 ? v128.load(bias + (<usize>cq << 4)) : v128.load(cp);
      v128.store(cp, row_quad(y, a, blk + <usize>cq * gnRec, gn, gs, sums + (<usize>g0 << 3), scale + (<usize>g0 << 2), nib, inv256));
    }
  }
}

/**
 * Y[M, ldc] = X·W + bias for column quads [cq0, cq1), M > 1 (prefill). Rows go three at a time:
 * the unpacked weights serve 3 rows, and each (row, digit) chain takes the even and odd dot of
 * an octet (18 dots per octet in flight over 9 chains of 2: throughput-bound, not latency-bound;
 * 4 rows would need 12 accumulators and spill). Leftover rows go through row_quad.
 *   mb: rows per block — the block's digits (mb·3K bytes) stay in L2 while the thread's column
 *   strips stream past; each strip is then reused from L1/L2 by the block's row tiles.
 */
export function gemm_q4_i8x3(
  act: usize, sums: usize, scale: usize, M: i32, K: i32, gs: i32, w: usize, bias: usize,
  c: usize, ldc: i32, mb: i32, cq0: i32, cq1: i32, tid: i32,
): void {
  const G = K / gs;
  const rec: usize = (<usize>gs << 1) + Q4_REC_EXTRA;
  // No vector constant stays live across the row-tile loop: the 9 accumulators, 2 unpacked
  // vectors and broadcast temporaries use all 15 xmm registers V8 allocates (a live mask or zero
  // made it spill two accumulators, measured ~1/3 slower). The mask is reloaded per octet (L1).
  const aRow: usize = <usize>K * 3; // digit bytes per row
  const gRow: usize = <usize>G << 3; // sums bytes per row
  const sRow: usize = <usize>G << 2; // scale bytes per row
  const ldcB: usize = <usize>ldc << 2;
  const nq = ldc >> 2, gb = q4_block_groups(gs);
  for (let m0 = 0; m0 < M; m0 += mb) {
    const mEnd = min(m0 + mb, M);
    for (let cq = cq0; cq < cq1; cq++) {
      const bq = v128.load(bias + (<usize>cq << 4));
      let m = m0;
      for (; m + 3 <= mEnd; m += 3) {
        let y0 = bq, y1 = bq, y2 = bq;
        let a = act + <usize>m * aRow;
        for (let g = 0; g < G; g++) {
          const r = q4_rec(w, cq, g, G, nq, gb, rec);
          let s00 = i32x4.splat(0), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00, s20 = s00, s21 = s00, s22 = s00;
          const end = r + (<usize>gs << 1);
          for (let q = r; q < end; q += 16) {
            const v = v128.load(q);
            const nib = v128.load(C_BYTE_NIB);
            const ev = v128.and(v, nib);
            const od = v128.and(i32x4.shr_u(v, 4), nib);
            s00 = dot_i8_i7_add(v128.load32_splat(a, 4), od, dot_i8_i7_add(v128.load32_splat(a), ev, s00));
            s01 = dot_i8_i7_add(v128.load32_splat(a, 12), od, dot_i8_i7_add(v128.load32_splat(a, 8), ev, s01));
            s02 = dot_i8_i7_add(v128.load32_splat(a, 20), od, dot_i8_i7_add(v128.load32_splat(a, 16), ev, s02));
            const b = a + aRow;
            s10 = dot_i8_i7_add(v128.load32_splat(b, 4), od, dot_i8_i7_add(v128.load32_splat(b), ev, s10));
            s11 = dot_i8_i7_add(v128.load32_splat(b, 12), od, dot_i8_i7_add(v128.load32_splat(b, 8), ev, s11));
            s12 = dot_i8_i7_add(v128.load32_splat(b, 20), od, dot_i8_i7_add(v128.load32_splat(b, 16), ev, s12));
            const d = b + aRow;
            s20 = dot_i8_i7_add(v128.load32_splat(d, 4), od, dot_i8_i7_add(v128.load32_splat(d), ev, s20));
            s21 = dot_i8_i7_add(v128.load32_splat(d, 12), od, dot_i8_i7_add(v128.load32_splat(d, 8), ev, s21));
            s22 = dot_i8_i7_add(v128.load32_splat(d, 20), od, dot_i8_i7_add(v128.load32_splat(d, 16), ev, s22));
            a += OCT_BYTES;
          }
          const sw = v128.load(end);
          const zp = v128.load(end, 16);
          const sg = sums + <usize>m * gRow + (<usize>g << 3);
          const sc = scale + <usize>m * sRow + (<usize>g << 2);
          const inv256 = v128.load(C_INV_256);
          y0 = finish(y0, s00, s01, s02, zp, sw, sg, sc, inv256);
          y1 = finish(y1, s10, s11, s12, zp, sw, sg + gRow, sc + sRow, inv256);
          y2 = finish(y2, s20, s21, s22, zp, sw, sg + 2 * gRow, sc + 2 * sRow, inv256);
        }
        const cp = c + <usize>m * ldcB + (<usize>cq << 4);
        v128.store(cp, y0);
        v128.store(cp + ldcB, y1);
        v128.store(cp + 2 * ldcB, y2);
      }
      for (; m < mEnd; m++) {
        let y = bq;
        for (let g0 = 0; g0 < G; g0 += gb) {
          const a = act + <usize>m * aRow + <usize>g0 * gs * 3;
          const sg = sums + <usize>m * gRow + (<usize>g0 << 3), sc = scale + <usize>m * sRow + (<usize>g0 << 2);
          y = row_quad(y, a, q4_rec(w, cq, g0, G, nq, gb, rec), min(gb, G - g0), gs, sg, sc, v128.load(C_BYTE_NIB), v128.load(C_INV_256));
        }
        v128.store(c + <usize>m * ldcB + (<usize>cq << 4), y);
      }
    }
  }
}
