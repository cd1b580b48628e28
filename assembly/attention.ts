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
import { hsum, exp4 } from "./simd";
import { tile4x8, tile1x8 } from "./gemm";
import { C_ZERO8 } from "./consts";

/** Query rows per work unit: S for 16 rows × 1024 keys is 64 KiB (L2). */
export const QB: i32 = 16;

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
      const mv = f32x4.splat(mx);
      let acc = f32x4.splat(0);
      let s = 0;
      for (; s + 4 <= n; s += 4) {
        const o: usize = <usize>s << 2;
        const e = exp4(f32x4.sub(v128.load(sr + o), mv));
        v128.store(sr + o, e);
        acc = f32x4.add(acc, e);
      }
      let sum = hsum(acc);
      for (; s < n; s++) {
        const o: usize = <usize>s << 2;
        const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(sr + o) - mx)), 0);
        store<f32>(sr + o, e);
        sum += e;
      }
      for (; s < nMax; s++) store<f32>(sr + (<usize>s << 2), 0);
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
