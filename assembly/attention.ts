// Multi-head scaled-dot-product attention as two small GEMMs per (head, block of query rows).
//   q [Tq, H, D], k/v [Tk, H, D], out [Tq, H, D]
//   out[t,h] = Σ_s softmax_s(scale·q[t,h]·k[s,h]) · v[s,h], over s < Tk, or, when causal,
//   s ≤ queryOffset + t (the query's absolute position; queryOffset = number of cached keys).
// Tq ≠ Tk covers the resampler's cross-attention (256 queries over 1024 keys) and KV-cache decode.
//
// Why GEMMs: one (query, head) at a time, every multiply-add needs two loads and the scores need a
// horizontal sum per key — about 10% of the FMA peak. Instead, per head:
//   1. attn_pack (units = heads) repacks K_h into the GEMM panel layout of gemm.ts
//      (Kp[s/8][d][s%8], keys padded to Tkp = 8·⌈Tk/8⌉ with zeros) and V_h likewise with the head
//      dimension as the output columns (Vp[d/8][s][d%8], d padded to Dp = 8·⌈D/8⌉).
//   2. attention (units = (head, block of QB query rows), head-major): S = Q_blk·K_hᵀ with the 6×8 and 4×8 register
//      tiles (k-dim = D), row-wise scale/mask/softmax in place (P, masked keys → 0),
//      O = P·V_h with the same tile (k-dim = the block's largest visible key count), then
//      out = O / rowsum.
// A unit's result does not depend on the thread running it, and masked keys contribute exact zeros,
// so outputs are bit-identical for any thread count.
// Scratch per thread (tid): S [QB][Tkp], O [QB][Dp], row sums [QB] (f32), at
// scratch + tid·QB·(Tkp + Dp + 1)·4.
import { hsum, exp4, madd } from "./simd";
import { tileRows } from "./gemm";
import { C_ZERO8, C_EXP_NEGLIGIBLE } from "./consts";

/** Query rows per work unit: three 6-row tiles; S for 18 rows × 1024 keys is 72 KiB (L2). */
export const QB: i32 = 18;

/**
 * Softmax numerators in place: p[i] = exp(p[i] − mx) for i < n, four at a time then the tail;
 * returns their sum (vector partial sums first, then the tail, in that fixed order).
 *
 * Numerators below 2^-100 (p[i] − mx < ln 2^-100) are stored as exact zeros. The largest
 * numerator is 1, so such a term is below 2^-76 of one ulp of the row sum and of any output it
 * joins: dropping it changes no result that is not already lost to cancellation. Kept, such terms
 * are worse than useless on x86: exp of a very negative argument and its products with V are
 * subnormal floats, each costing a microcode assist (~100 cycles; WebAssembly cannot set
 * flush-to-zero). Peaked attention rows are made mostly of them — measured on a 300-token prefill
 * of the full-width decoder, the attention products ran 5–8× slower with them.
 */
@inline
function expShiftSum(p: usize, n: i32, mx: f32): f32 {
  const mv = f32x4.splat(mx);
  const lo = v128.load(C_EXP_NEGLIGIBLE);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o: usize = <usize>i << 2;
    const x = f32x4.sub(v128.load(p + o), mv);
    const e = v128.and(exp4(x), f32x4.ge(x, lo));
    v128.store(p + o, e);
    acc = f32x4.add(acc, e);
  }
  let sum = hsum(acc);
  for (; i < n; i++) {
    const o: usize = <usize>i << 2;
    const x = f32x4.splat(load<f32>(p + o) - mx);
    const e = f32x4.extract_lane(v128.and(exp4(x), f32x4.ge(x, lo)), 0);
    store<f32>(p + o, e);
    sum += e;
  }
  return sum;
}

/** Repack K and V of heads [h0, h1). kp: H·Tkp·D floats, vp: H·Dp·Tk floats. */
export function attn_pack(k: usize, v: usize, kp: usize, vp: usize, Tk: i32, H: i32, D: i32, h0: i32, h1: i32, tid: i32): void {
  const Tkp = (Tk + 7) & ~7, Dp = (D + 7) & ~7;
  const rowB: usize = (<usize>H * D) << 2;
  for (let h = h0; h < h1; h++) {
    const kh = kp + ((<usize>h * Tkp * D) << 2);
    const vh = vp + ((<usize>h * Dp * Tk) << 2);
    for (let s = 0; s < Tkp; s++) {
      const src = k + <usize>s * rowB + ((<usize>h * D) << 2);
      const dst = kh + ((<usize>(s >> 3) * D * 8 + (s & 7)) << 2);
      for (let d = 0; d < D; d++) store<f32>(dst + (<usize>d << 5), s < Tk ? load<f32>(src + (<usize>d << 2)) : 0);
    }
    for (let s = 0; s < Tk; s++) {
      const src = v + <usize>s * rowB + ((<usize>h * D) << 2);
      for (let d = 0; d < Dp; d++) {
        const dst = vh + ((<usize>(d >> 3) * Tk * 8 + <usize>s * 8 + (d & 7)) << 2);
        store<f32>(dst, d < D ? load<f32>(src + (<usize>d << 2)) : 0);
      }
    }
  }
}

export function attention(
  q: usize, kp: usize, vp: usize, out: usize, Tq: i32, Tk: i32, H: i32, D: i32,
  scale: f32, causal: i32, qOffset: i32, scratch: usize, u0: i32, u1: i32, tid: i32,
): void {
  const Tkp = (Tk + 7) & ~7, Dp = (D + 7) & ~7;
  const S = scratch + ((<usize>tid * QB * (Tkp + Dp + 1)) << 2);
  const O = S + ((<usize>QB * Tkp) << 2);
  const sums = O + ((<usize>QB * Dp) << 2);
  const ldS: usize = <usize>Tkp << 2, ldO: usize = <usize>Dp << 2;
  const qRow: usize = (<usize>H * D) << 2;
  const blocks = (Tq + QB - 1) / QB;
  for (let u = u0; u < u1; u++) {
    const h = u / blocks;
    const t0 = (u % blocks) * QB;
    const rows = min(QB, Tq - t0);
    // Keys visible to the block's last row bound the work of both products.
    const nMax = causal ? min(Tk, qOffset + t0 + rows) : Tk;
    const panels = (nMax + 7) >> 3;
    const kh = kp + ((<usize>h * Tkp * D) << 2);
    const vh = vp + ((<usize>h * Dp * Tk) << 2);
    const qb = q + <usize>t0 * qRow + ((<usize>h * D) << 2);
    // 1. S[r, s] = q_r · k_s
    for (let p = 0; p < panels; p++) {
      const b = kh + ((<usize>p * D) << 5);
      tileRows(qb, qRow, b, D, S + (<usize>p << 5), ldS, rows, C_ZERO8, 0);
    }
    // 2. row-wise softmax in place; keys past the row's limit (and up to nMax) become 0.
    for (let r = 0; r < rows; r++) {
      const sr = S + <usize>r * ldS;
      const n = causal ? min(Tk, qOffset + t0 + r + 1) : Tk;
      let mx: f32 = -Infinity;
      for (let s = 0; s < n; s++) {
        const x = load<f32>(sr + (<usize>s << 2)) * scale;
        store<f32>(sr + (<usize>s << 2), x);
        mx = max(mx, x);
      }
      const sum = expShiftSum(sr, n, mx);
      for (let s = n; s < nMax; s++) store<f32>(sr + (<usize>s << 2), 0);
      store<f32>(sums + (<usize>r << 2), sum);
    }
    // 3. O = P · V_h over the nMax visible keys, then out = O / row sum.
    for (let p = 0; p < (Dp >> 3); p++) {
      const b = vh + ((<usize>p * Tk) << 5);
      tileRows(S, ldS, b, nMax, O + (<usize>p << 5), ldO, rows, C_ZERO8, 0);
    }
    for (let r = 0; r < rows; r++) {
      const inv: f32 = <f32>1 / load<f32>(sums + (<usize>r << 2));
      const orow = out + <usize>(t0 + r) * qRow + ((<usize>h * D) << 2);
      const ob = O + <usize>r * ldO;
      for (let d = 0; d < D; d++) store<f32>(orow + (<usize>d << 2), load<f32>(ob + (<usize>d << 2)) * inv);
    }
  }
}

/**
 * One query row (decode, Tq = 1) straight on k/v [Tk, H, D], no repacking: for a single row the
 * GEMM form above costs a full transpose of K and V per call, more than the products.
 *
 * Keys outer, heads inner: position j's keys (and values) of all heads are one contiguous row of
 * H·D floats, so walking j and, inside it, the unit's heads reads the cache as a few long
 * streams. Walking one head's keys at a time instead reads 4·D bytes every 4·H·D bytes (16 KiB for
 * Qwen-7B): a new page per key, where the hardware prefetchers stop; measured that way the decode
 * attention ran at ~3 GB/s.
 *   1. s[h][j] = scale · q_h·k_jh (4-lane partial sums over d, then hsum)
 *   2. per head: softmax numerators over the n visible keys in place, and their sum
 *   3. o[h] = Σ_j p_hj v_jh, keys four at a time into an accumulator row per head (the adds
 *      still run over j in order), then out_h = o[h] / sum_h.
 * Needs D % 4 = 0 (the wrapper falls back to the GEMM form otherwise). Units = heads; every head's
 * arithmetic, and its order, is the same whichever thread runs it, so any thread count gives the
 * same bits. Scratch per thread: scores [H][n], accumulators [H][D] and sums [H] (f32), at
 * scratch + tid·H·(n + D + 1)·4 (room for all H heads: a thread may be given any of them).
 */
export function attn_decode(
  q: usize, k: usize, v: usize, out: usize, Tk: i32, H: i32, D: i32, scale: f32, n: i32,
  scratch: usize, h0: i32, h1: i32, tid: i32,
): void {
  const S = scratch + ((<usize>tid * H * (n + D + 1)) << 2);
  const O = S + ((<usize>H * n) << 2);
  const sums = O + ((<usize>H * D) << 2);
  const rowB: usize = (<usize>H * D) << 2;
  const dB: usize = <usize>D << 2;
  const nB: usize = <usize>n << 2;
  // 1. scores
  for (let j = 0; j < n; j++) {
    const kj = k + <usize>j * rowB;
    for (let h = h0; h < h1; h++) {
      const qh = q + ((<usize>h * D) << 2);
      const kh = kj + ((<usize>h * D) << 2);
      let a0 = f32x4.splat(0), a1 = a0;
      let d: usize = 0;
      for (; d + 32 <= dB; d += 32) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load(qh + d), v128.load(kh + d)));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(qh + d, 16), v128.load(kh + d, 16)));
      }
      if (d < dB) a0 = f32x4.add(a0, f32x4.mul(v128.load(qh + d), v128.load(kh + d)));
      store<f32>(S + <usize>(h - h0) * nB + (<usize>j << 2), hsum(f32x4.add(a0, a1)) * scale);
    }
  }
  // 2. softmax numerators in place and their sums; accumulators cleared
  for (let h = h0; h < h1; h++) {
    const sh = S + <usize>(h - h0) * nB;
    let mx: f32 = -Infinity;
    for (let j = 0; j < n; j++) mx = max(mx, load<f32>(sh + (<usize>j << 2)));
    store<f32>(sums + (<usize>(h - h0) << 2), expShiftSum(sh, n, mx));
    memory.fill(O + <usize>(h - h0) * dB, 0, dB);
  }
  // 3. o[h] += p_hj v_jh, four keys per pass over the accumulators
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const v0 = v + <usize>j * rowB;
    for (let h = h0; h < h1; h++) {
      const sh = S + <usize>(h - h0) * nB + (<usize>j << 2);
      const p0 = v128.load32_splat(sh), p1 = v128.load32_splat(sh + 4);
      const p2 = v128.load32_splat(sh + 8), p3 = v128.load32_splat(sh + 12);
      const oh = O + <usize>(h - h0) * dB;
      const vh = v0 + ((<usize>h * D) << 2);
      for (let d: usize = 0; d < dB; d += 16) {
        let o = v128.load(oh + d);
        o = madd(p0, v128.load(vh + d), o);
        o = madd(p1, v128.load(vh + rowB + d), o);
        o = madd(p2, v128.load(vh + 2 * rowB + d), o);
        o = madd(p3, v128.load(vh + 3 * rowB + d), o);
        v128.store(oh + d, o);
      }
    }
  }
  for (; j < n; j++) {
    const vj = v + <usize>j * rowB;
    for (let h = h0; h < h1; h++) {
      const p = v128.load32_splat(S + <usize>(h - h0) * nB + (<usize>j << 2));
      const oh = O + <usize>(h - h0) * dB;
      const vh = vj + ((<usize>h * D) << 2);
      for (let d: usize = 0; d < dB; d += 16) v128.store(oh + d, madd(p, v128.load(vh + d), v128.load(oh + d)));
    }
  }
  for (let h = h0; h < h1; h++) {
    const inv = f32x4.splat(<f32>1 / load<f32>(sums + (<usize>(h - h0) << 2)));
    const oh = O + <usize>(h - h0) * dB;
    const dst = out + ((<usize>h * D) << 2);
    for (let d: usize = 0; d < dB; d += 16) v128.store(dst + d, f32x4.mul(v128.load(oh + d), inv));
  }
}
