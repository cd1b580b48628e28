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
//   2. attention (units = (head, block of QB query rows), head-major): S = Q_blk·K_hᵀ with the 4×8
//      register tile (k-dim = D), row-wise scale/mask/softmax in place (P, masked keys → 0),
//      O = P·V_h with the same tile (k-dim = the block's largest visible key count), then
//      out = O / rowsum.
// A unit's result does not depend on the thread running it, and masked keys contribute exact zeros,
// so outputs are bit-identical for any thread count.
// Scratch per thread (tid): S [QB][Tkp], O [QB][Dp], row sums [QB] (f32), at
// scratch + tid·QB·(Tkp + Dp + 1)·4.
import { hsum, exp4, madd } from "./simd";
import { tile4x8, tile1x8 } from "./gemm";
import { C_ZERO8 } from "./consts";

/** Query rows per work unit: S for 16 rows × 1024 keys is 64 KiB (L2). */
export const QB: i32 = 16;

/**
 * Softmax numerators in place: p[i] = exp(p[i] − mx) for i < n, four at a time then the tail;
 * returns their sum (vector partial sums first, then the tail, in that fixed order).
 */
@inline
function expShiftSum(p: usize, n: i32, mx: f32): f32 {
  const mv = f32x4.splat(mx);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o: usize = <usize>i << 2;
    const e = exp4(f32x4.sub(v128.load(p + o), mv));
    v128.store(p + o, e);
    acc = f32x4.add(acc, e);
  }
  let sum = hsum(acc);
  for (; i < n; i++) {
    const o: usize = <usize>i << 2;
    const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(p + o) - mx)), 0);
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
      let r = 0;
      for (; r + 4 <= rows; r += 4) tile4x8(qb + <usize>r * qRow, qRow, b, D, S + <usize>r * ldS + (<usize>p << 5), ldS, C_ZERO8);
      for (; r < rows; r++) tile1x8(qb + <usize>r * qRow, b, D, S + <usize>r * ldS + (<usize>p << 5), C_ZERO8);
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
      let r = 0;
      for (; r + 4 <= rows; r += 4) tile4x8(S + <usize>r * ldS, ldS, b, nMax, O + <usize>r * ldO + (<usize>p << 5), ldO, C_ZERO8);
      for (; r < rows; r++) tile1x8(S + <usize>r * ldS, b, nMax, O + <usize>r * ldO + (<usize>p << 5), C_ZERO8);
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
 * GEMM form above costs a full transpose of K and V per call, more than the products. Per head:
 *   s_j = scale · q_h·k_j (4-lane partial sums over d, then hsum), softmax over the n visible keys
 *   as above, out_h = (Σ_j p_j v_j) / Σ_j p_j with the accumulators over d held in registers,
 *   16 columns at a time. Needs D % 4 = 0 (the wrapper falls back to the GEMM form otherwise).
 * Units = heads; a head's result does not depend on the thread, so any thread count gives the
 * same bits. Scratch per thread: Tk f32 scores at scratch + tid·Tk·4.
 */
export function attn_decode(
  q: usize, k: usize, v: usize, out: usize, Tk: i32, H: i32, D: i32, scale: f32, n: i32,
  scratch: usize, h0: i32, h1: i32, tid: i32,
): void {
  const S = scratch + ((<usize>tid * Tk) << 2);
  const rowB: usize = (<usize>H * D) << 2;
  const dB: usize = <usize>D << 2;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * D) << 2);
    const kh = k + ((<usize>h * D) << 2);
    const vh = v + ((<usize>h * D) << 2);
    // 1. scores
    let mx: f32 = -Infinity;
    for (let j = 0; j < n; j++) {
      const kj = kh + <usize>j * rowB;
      let a0 = f32x4.splat(0), a1 = a0;
      let d: usize = 0;
      for (; d + 32 <= dB; d += 32) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load(qh + d), v128.load(kj + d)));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(qh + d, 16), v128.load(kj + d, 16)));
      }
      if (d < dB) a0 = f32x4.add(a0, f32x4.mul(v128.load(qh + d), v128.load(kj + d)));
      const x = hsum(f32x4.add(a0, a1)) * scale;
      store<f32>(S + (<usize>j << 2), x);
      mx = max(mx, x);
    }
    // 2. softmax numerators in place and their sum
    const sum = expShiftSum(S, n, mx);
    const inv = f32x4.splat(<f32>1 / sum);
    // 3. out_h = Σ_j p_j v_j / sum, 16 columns (4 accumulators) at a time, then 4 at a time
    const oh = out + ((<usize>h * D) << 2);
    let d: usize = 0;
    for (; d + 64 <= dB; d += 64) {
      let o0 = f32x4.splat(0), o1 = o0, o2 = o0, o3 = o0;
      let vj = vh + d;
      for (let t = 0; t < n; t++) {
        const p = v128.load32_splat(S + (<usize>t << 2));
        o0 = madd(p, v128.load(vj), o0);
        o1 = madd(p, v128.load(vj, 16), o1);
        o2 = madd(p, v128.load(vj, 32), o2);
        o3 = madd(p, v128.load(vj, 48), o3);
        vj += rowB;
      }
      v128.store(oh + d, f32x4.mul(o0, inv));
      v128.store(oh + d, f32x4.mul(o1, inv), 16);
      v128.store(oh + d, f32x4.mul(o2, inv), 32);
      v128.store(oh + d, f32x4.mul(o3, inv), 48);
    }
    for (; d < dB; d += 16) {
      let o0 = f32x4.splat(0);
      let vj = vh + d;
      for (let t = 0; t < n; t++) {
        o0 = madd(v128.load32_splat(S + (<usize>t << 2)), v128.load(vj), o0);
        vj += rowB;
      }
      v128.store(oh + d, f32x4.mul(o0, inv));
    }
  }
}
