// GPTQ int4 matmul kernels over repacked records:
//   gemm_q4_i16   — int4 weights × int16 activations with i32x4.dot_i16x8_s ("fast" precision),
//                   for decode (M = 1, a GEMV) and prefill (M > 1) alike;
//   (gemv_q4_i16x2.ts: decode in the default "f32" precision, the same integer products on two
//                   int16 levels of the activations, accurate beyond f32 rounding;)
//   gemv_q4_f32   — decode with every nibble converted to f32 (option decodeQ4: "f32").
//   Prefill in "f32" precision goes through gemm.ts mode 3, which dequantises panels for the
//   register-tiled f32 kernel.
//
// Weight record layout (repacked once at linear() time by src/ops/wasm/pack.ts)
//   Columns are taken four at a time ("column quad" cq = columns 4cq..4cq+3). For each quad and
//   each group g of `gs` input rows there is one record:
//     gs/8 v128: the AutoGPTQ qweight words qweight[g·gs/8 + o, 4cq..4cq+3] (o = 0..gs/8−1), i.e.
//                the original int32s: per 32-bit lane (= column) 8 nibbles = k0..k7 of an octet;
//     f32x4    : scales[g, 4cq..4cq+3] (fp16 → f32);
//     i32x4    : z′ = qzeros nibble + 1 (the AutoGPTQ "+1", see src/ops/backend.ts GptqWeights).
//   Records are ordered [K block][cq][g in block], blocks of Q4_BLOCK_K inputs (q4_rec below): a
//   kernel that walks one K block over its column quads reads one contiguous stream while that
//   block's activations stay in L1. With K ≤ Q4_BLOCK_K this is [cq][g]: one quad's whole column
//   strip is contiguous.
//
// Unpacking nibbles with SIMD, without widening
//   Viewed as i16 lanes, the 32-bit lane of column c is [k0 k1 k2 k3 | k4 k5 k6 k7] (4 nibbles per
//   i16). Masking each i16 lane with 0x000F after shifting by 0, 4, 8 (and a bare shift by 12)
//   yields four i16x8 vectors  w_j = [q(k_j), q(k_j+4)] per column, j = 0..3: 6 ops for 32 weights.
//   dot_i16x8_s(w_j, A_j) with A_j = [a_j, a_j+4] repeated for the 4 columns sums each adjacent
//   i16 pair into the column's i32 lane: the accumulator lanes are the 4 columns, nothing to fold.
//   The activations are stored, per octet, as the four i16 pairs (a_j, a_j+4) — 16 bytes, the
//   plain int16 size — and A_j is one v128.load32_splat (a broadcasting load) of pair j.
//
// Arithmetic per group (exact in i32): Σ_k a_k (q_k − z′) = Σ_k a_k q_k − z′ Σ_k a_k.
//   |a| ≤ 32767, q ≤ 15: |Σ a q| ≤ gs·32767·15, z′·|Σa| ≤ 16·gs·32767, and the one-row paths keep
//   nibble 1 unshifted (16·q) in its own accumulator: ≤ 16·(gs/4)·32767·15. All < 2^31 for
//   gs ≤ 1024; the wrapper sends larger groups to the f32 kernels.
//   Then y += f32(that) · (scale_w · scale_a); the only approximation is rounding x to int16 per
//   (row, group) with scale_a = max|x|/32767 — its error is measured in docs/kernels.md.
import { madd } from "./simd";
import { C_NIB_MASK, C_NIB_MASK_1, C_I32_15 } from "./consts";

/** Bytes after the qweight words in a record: scales f32x4 + z′ i32x4. */
export const Q4_REC_EXTRA: usize = 32;
/** Inputs per K block of the record layout (src/ops/wasm/pack.ts writes it). */
export const Q4_BLOCK_K: i32 = 4096;

/** Groups per K block. */
// @ts-ignore: decorator
@inline export function q4_block_groups(gs: i32): i32 {
  return max(1, Q4_BLOCK_K / gs);
}

/** Address of the record of column quad cq, group g (nq quads, G groups, gb groups per block). */
// @ts-ignore: decorator
@inline export function q4_rec(w: usize, cq: i32, g: i32, G: i32, nq: i32, gb: i32, rec: usize): usize {
  const j = g % gb;
  const g0 = g - j;
  return w + (<usize>g0 * nq + <usize>cq * min(gb, G - g0) + j) * rec;
}

/**
 * Quantise rows of x [M, K] to int16 per (row, group):
 *   act [M][K/8][4 pairs (a_j, a_j+4) of i16] (16 bytes per octet), scaleA [M][G] f32,
 *   rowSum [M][G] i32 (Σ a).
 * (The two-level form for the exact decode path is q4_quantize_i16x2, gemv_q4_i16x2.ts.)
 * O(M·K), done by one thread before the threaded product.
 */
export function q4_quantize_rows(
  x: usize, M: i32, K: i32, gs: i32, act: usize, scaleA: usize, rowSum: usize,
): void {
  const G = K / gs;
  for (let m = 0; m < M; m++) {
    for (let g = 0; g < G; g++) {
      const xg = x + ((<usize>m * K + <usize>g * gs) << 2);
      let amax: f32 = 0;
      for (let k = 0; k < gs; k++) amax = max(amax, abs(load<f32>(xg + (<usize>k << 2))));
      const sa: f32 = amax / <f32>32767;
      // The scale actually used is the stored f32 sa, so quantise against exactly 1/sa (in f64).
      const inv: f64 = amax > 0 ? <f64>1 / <f64>sa : 0;
      store<f32>(scaleA + ((<usize>m * G + g) << 2), sa);
      let sum: i32 = 0;
      const at: usize = (<usize>m * K + <usize>g * gs) << 1;
      for (let o = 0; o < gs >> 3; o++) {
        for (let j = 0; j < 8; j++) {
          const v: f64 = <f64>load<f32>(xg + (<usize>(o * 8 + j) << 2)) * inv;
          const q = <i32>nearest(v);
          sum += q;
          // k_j goes to pair j mod 4, first or second half by j / 4.
          const slot: usize = at + (<usize>o << 4) + (<usize>(j & 3) << 2) + (<usize>(j >> 2) << 1);
          store<i16>(act + slot, <i16>q);
        }
      }
      store<i32>(rowSum + ((<usize>m * G + g) << 2), sum);
    }
  }
}

/** Finish one group for one row: y += f32(Σaq − z′Σa) · (scale_w · scale_a). */
// @ts-ignore: decorator
@inline function finish(y: v128, acc: v128, zp: v128, sw: v128, rs: usize, sa: usize): v128 {
  const isum = i32x4.sub(acc, i32x4.mul(zp, v128.load32_splat(rs)));
  return f32x4.add(y, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(sw, v128.load32_splat(sa))));
}

/** acc += Σ_j dot(w_j, A_j) for one octet; w_j are the unpacked nibbles, a the octet's pairs. */
// @ts-ignore: decorator
@inline function dot4(acc: v128, w0: v128, w1: v128, w2: v128, w3: v128, a: usize): v128 {
  const s01 = i32x4.add(i32x4.dot_i16x8_s(w0, v128.load32_splat(a)), i32x4.dot_i16x8_s(w1, v128.load32_splat(a, 4)));
  const s23 = i32x4.add(i32x4.dot_i16x8_s(w2, v128.load32_splat(a, 8)), i32x4.dot_i16x8_s(w3, v128.load32_splat(a, 12)));
  return i32x4.add(acc, i32x4.add(s01, s23));
}

/** acc += dot(w0, A_0) + dot(w2, A_2) + dot(w3, A_3) (nibble 1 handled by the caller). */
// @ts-ignore: decorator
@inline function dot3(acc: v128, w0: v128, w2: v128, w3: v128, a: usize): v128 {
  const s02 = i32x4.add(i32x4.dot_i16x8_s(w0, v128.load32_splat(a)), i32x4.dot_i16x8_s(w2, v128.load32_splat(a, 8)));
  return i32x4.add(acc, i32x4.add(s02, i32x4.dot_i16x8_s(w3, v128.load32_splat(a, 12))));
}

/**
 * y[M, ldc] = x · W + bias for column quads [cq0, cq1) (this thread's share).
 *   act/scaleA/rowSum from q4_quantize_rows; w: records; bias f32 [Np]; c: output.
 *   Rows go four at a time (the unpacked weights are reused for 4 rows), then one at a time.
 *   mb: rows per block — the block's activations (mb·K·2 bytes) stay in L2 while the thread's
 *   column strips stream past; each strip (one quad, all groups: K·2 + 32·G bytes) is reused from
 *   L1 by the row tiles of the block.
 */
export function gemm_q4_i16(
  act: usize, scaleA: usize, rowSum: usize, M: i32, K: i32, gs: i32, w: usize, bias: usize,
  c: usize, ldc: i32, mb: i32, cq0: i32, cq1: i32, tid: i32,
): void {
  const G = K / gs;
  const nOct = gs >> 3;
  const rec: usize = (<usize>gs << 1) + Q4_REC_EXTRA;
  const mask = v128.load(C_NIB_MASK); // 0x000F in every i16 lane
  const mask16 = v128.load(C_NIB_MASK_1); // 0x00F0 in every i16 lane
  const actRow: usize = <usize>K << 1; // bytes of act per row
  const gstep: usize = <usize>G << 2; // bytes between rows of scaleA / rowSum
  const ldcB: usize = <usize>ldc << 2;
  const nq = ldc >> 2, gb = q4_block_groups(gs);
  for (let m0 = 0; m0 < M; m0 += mb) {
    const mEnd = min(m0 + mb, M);
    for (let cq = cq0; cq < cq1; cq++) {
      const bq = v128.load(bias + (<usize>cq << 4));
      let m = m0;
      for (; m + 4 <= mEnd; m += 4) {
        let y0 = bq, y1 = bq, y2 = bq, y3 = bq;
        let a = act + <usize>m * actRow;
        for (let g = 0; g < G; g++) {
          const r = q4_rec(w, cq, g, G, nq, gb, rec);
          let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
          for (let o = 0; o < nOct; o++) {
            const v = v128.load(r + (<usize>o << 4));
            const w0 = v128.and(v, mask);
            const w1 = v128.and(i16x8.shr_u(v, 4), mask);
            const w2 = v128.and(i16x8.shr_u(v, 8), mask);
            const w3 = i16x8.shr_u(v, 12);
            s0 = dot4(s0, w0, w1, w2, w3, a);
            s1 = dot4(s1, w0, w1, w2, w3, a + actRow);
            s2 = dot4(s2, w0, w1, w2, w3, a + 2 * actRow);
            s3 = dot4(s3, w0, w1, w2, w3, a + 3 * actRow);
            a += 16;
          }
          const sw = v128.load(r + (<usize>gs << 1));
          const zp = v128.load(r + (<usize>gs << 1), 16);
          const ga: usize = (<usize>m * G + g) << 2;
          y0 = finish(y0, s0, zp, sw, rowSum + ga, scaleA + ga);
          y1 = finish(y1, s1, zp, sw, rowSum + ga + gstep, scaleA + ga + gstep);
          y2 = finish(y2, s2, zp, sw, rowSum + ga + 2 * gstep, scaleA + ga + 2 * gstep);
          y3 = finish(y3, s3, zp, sw, rowSum + ga + 3 * gstep, scaleA + ga + 3 * gstep);
        }
        const cp = c + <usize>m * ldcB + (<usize>cq << 4);
        v128.store(cp, y0);
        v128.store(cp + ldcB, y1);
        v128.store(cp + 2 * ldcB, y2);
        v128.store(cp + 3 * ldcB, y3);
      }
      for (; m < mEnd; m++) {
        let y = bq;
        let a = act + <usize>m * actRow;
        for (let g = 0; g < G; g++) {
          const r = q4_rec(w, cq, g, G, nq, gb, rec);
          let s = i32x4.splat(0), s16 = s;
          for (let o = 0; o < nOct; o++) {
            const v = v128.load(r + (<usize>o << 4));
            s = dot3(s, v128.and(v, mask), v128.and(i16x8.shr_u(v, 8), mask), i16x8.shr_u(v, 12), a);
            // Nibble 1 is masked in place (16·q), saving the shift; its sum is 16× and exact.
            // (Doing the same for nibble 2, folded every 8 octets, measured within noise.)
            s16 = i32x4.add(s16, i32x4.dot_i16x8_s(v128.and(v, mask16), v128.load32_splat(a, 4)));
            a += 16;
          }
          s = i32x4.add(s, i32x4.shr_s(s16, 4));
          const ga: usize = (<usize>m * G + g) << 2;
          y = finish(y, s, v128.load(r + (<usize>gs << 1), 16), v128.load(r + (<usize>gs << 1)), rowSum + ga, scaleA + ga);
        }
        v128.store(c + <usize>m * ldcB + (<usize>cq << 4), y);
      }
    }
  }
}

/**
 * Exact f32 GEMV on the same records: y[n] = bias[n] + Σ_g s[g,n]·(Σ_k x_k q_kn − z′[g,n]·Σ_k x_k).
 * Lanes = 4 columns; for each k, (v >> 4j) & 15 is that k's nibble in every column, converted to
 * f32 and multiplied by the broadcast x_k. xsum: Σ_k x_k per group, f32 [G].
 */
export function gemv_q4_f32(x: usize, xsum: usize, K: i32, gs: i32, w: usize, nq: i32, bias: usize, c: usize, cq0: i32, cq1: i32, tid: i32): void {
  const gb = q4_block_groups(gs);
  const G = K / gs;
  const nOct = gs >> 3;
  const rec: usize = (<usize>gs << 1) + Q4_REC_EXTRA;
  const low = v128.load(C_I32_15);
  for (let cq = cq0; cq < cq1; cq++) {
    let y = v128.load(bias + (<usize>cq << 4));
    let xp = x;
    for (let g = 0; g < G; g++) {
      const r = q4_rec(w, cq, g, G, nq, gb, rec);
      let s = f32x4.splat(0), t = s;
      for (let o = 0; o < nOct; o++) {
        const v = v128.load(r + (<usize>o << 4));
        s = madd(v128.load32_splat(xp), f32x4.convert_i32x4_s(v128.and(v, low)), s);
        t = madd(v128.load32_splat(xp, 4), f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, 4), low)), t);
        s = madd(v128.load32_splat(xp, 8), f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, 8), low)), s);
        t = madd(v128.load32_splat(xp, 12), f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, 12), low)), t);
        s = madd(v128.load32_splat(xp, 16), f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, 16), low)), s);
        t = madd(v128.load32_splat(xp, 20), f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, 20), low)), t);
        s = madd(v128.load32_splat(xp, 24), f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, 24), low)), s);
        t = madd(v128.load32_splat(xp, 28), f32x4.convert_i32x4_s(i32x4.shr_u(v, 28)), t);
        xp += 32;
      }
      const zp = f32x4.convert_i32x4_s(v128.load(r + (<usize>gs << 1), 16));
      const dotq = f32x4.sub(f32x4.add(s, t), f32x4.mul(zp, v128.load32_splat(xsum + (<usize>g << 2))));
      y = madd(v128.load(r + (<usize>gs << 1)), dotq, y);
    }
    v128.store(c + (<usize>cq << 4), y);
  }
}
