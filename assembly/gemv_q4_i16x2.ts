// GPTQ int4 decode GEMV on two int16 levels of the activation ("i16x2", exact: docs/kernels.md).
// Reads the records of assembly/gemv_q4.ts (layout and nibble unpacking described there); the
// activation has a layout of its own, written by q4_quantize_i16x2.
//
// Per octet (8 inputs × 4 columns) the loop does 1 weight load, 5 unpack ops, 8 `dot_i16x8_s`
// and 8 adds: the dots are the multiply work the limit counts (2 int16 products per weight), the
// rest is overhead. Two column quads go through each octet together, so the 8 activation
// broadcasts and the loop's scalar work serve 64 weights instead of 32.
import { madd } from "./simd";
import { C_NIB_MASK, C_NIB_MASK_1, C_INV_32768 } from "./consts";
import { Q4_REC_EXTRA, q4_block_groups } from "./gemv_q4";

/** Activation bytes per octet: 4 pairs (a_j, a_j+4) of int16 for each of the two levels. */
const OCT: usize = 32;

/**
 * Quantise one row x [K] to two int16 levels per group, like q4_quantize_rows with a residual:
 *   x·32767/max = a + a_lo/32768 (+ ≤ 2^-16), a, a_lo ∈ [−32767, 32767] (|a_lo| ≤ 16384).
 *   act [K/8][32 bytes]: per octet the 4 pairs (a_j, a_j+4) of the first level, then the same 4
 *   pairs of the second level, so that one pointer reaches all 8 broadcasts of an octet;
 *   sums [G][2] i32: (Σ a, Σ a_lo); scaleA [G] f32: max|x|/32767.
 */
export function q4_quantize_i16x2(x: usize, K: i32, gs: i32, act: usize, sums: usize, scaleA: usize): void {
  const G = K / gs;
  for (let g = 0; g < G; g++) {
    const xg = x + ((<usize>g * gs) << 2);
    let amax: f32 = 0;
    for (let k = 0; k < gs; k++) amax = max(amax, abs(load<f32>(xg + (<usize>k << 2))));
    const sa: f32 = amax / <f32>32767;
    // Quantise against exactly 1/sa (in f64): the scale used later is the stored f32 sa.
    const inv: f64 = amax > 0 ? <f64>1 / <f64>sa : 0;
    store<f32>(scaleA + (<usize>g << 2), sa);
    let sum: i32 = 0, sumLo: i32 = 0;
    const at: usize = act + <usize>g * (gs >> 3) * OCT;
    for (let o = 0; o < gs >> 3; o++) {
      for (let j = 0; j < 8; j++) {
        const v: f64 = <f64>load<f32>(xg + (<usize>(o * 8 + j) << 2)) * inv;
        const q = <i32>nearest(v);
        const lo = <i32>nearest((v - <f64>q) * 32768);
        sum += q;
        sumLo += lo;
        // k_j goes to pair j mod 4, first or second half by j / 4.
        const slot: usize = at + <usize>o * OCT + (<usize>(j & 3) << 2) + (<usize>(j >> 2) << 1);
        store<i16>(slot, <i16>q);
        store<i16>(slot + 16, <i16>lo);
      }
    }
    store<i32>(sums + (<usize>g << 3), sum);
    store<i32>(sums + (<usize>g << 3) + 4, sumLo);
  }
}

/** y + sw·sa·[(S − z′Σa) + (T − z′Σa_lo)/32768] for one column quad; S, T exact i32 sums. */
// @ts-ignore: decorator
@inline function finish(y: v128, s: v128, t: v128, r: usize, sg: usize, sc: usize, inv32768: v128): v128 {
  const zp = v128.load(r, 16);
  const hi = f32x4.convert_i32x4_s(i32x4.sub(s, i32x4.mul(zp, v128.load32_splat(sg))));
  const lo = f32x4.convert_i32x4_s(i32x4.sub(t, i32x4.mul(zp, v128.load32_splat(sg, 4))));
  return madd(madd(lo, inv32768, hi), f32x4.mul(v128.load(r), v128.load32_splat(sc)), y);
}

// One group of column quads 2p and 2p + 1 (records r and r + strip, activations a): y from yp
// (the bias or c), stored to cp.
// @ts-ignore: decorator
@inline function pairGroup(
  yp: usize, cp: usize, r: usize, strip: usize, a: usize, qb: usize, sg: usize, sc: usize,
  mask: v128, mask16: v128, inv32768: v128, zero: v128,
): void {
  // s: first level, t: second; *16: nibble 1 masked in place (16·q, exact, divided at the end).
  let sa = zero, ta = zero, sa16 = zero, ta16 = zero, sb = zero, tb = zero, sb16 = zero, tb16 = zero;
  const end = r + qb;
  for (let q = r; q < end; q += 16) {
    const va = v128.load(q);
    const vb = v128.load(q + strip);
    let h = v128.load32_splat(a), l = v128.load32_splat(a, 16);
    let u = v128.and(va, mask), v = v128.and(vb, mask);
    sa = i32x4.add(sa, i32x4.dot_i16x8_s(u, h));
    ta = i32x4.add(ta, i32x4.dot_i16x8_s(u, l));
    sb = i32x4.add(sb, i32x4.dot_i16x8_s(v, h));
    tb = i32x4.add(tb, i32x4.dot_i16x8_s(v, l));
    h = v128.load32_splat(a, 8);
    l = v128.load32_splat(a, 24);
    u = v128.and(i16x8.shr_u(va, 8), mask);
    v = v128.and(i16x8.shr_u(vb, 8), mask);
    sa = i32x4.add(sa, i32x4.dot_i16x8_s(u, h));
    ta = i32x4.add(ta, i32x4.dot_i16x8_s(u, l));
    sb = i32x4.add(sb, i32x4.dot_i16x8_s(v, h));
    tb = i32x4.add(tb, i32x4.dot_i16x8_s(v, l));
    h = v128.load32_splat(a, 12);
    l = v128.load32_splat(a, 28);
    u = i16x8.shr_u(va, 12);
    v = i16x8.shr_u(vb, 12);
    sa = i32x4.add(sa, i32x4.dot_i16x8_s(u, h));
    ta = i32x4.add(ta, i32x4.dot_i16x8_s(u, l));
    sb = i32x4.add(sb, i32x4.dot_i16x8_s(v, h));
    tb = i32x4.add(tb, i32x4.dot_i16x8_s(v, l));
    h = v128.load32_splat(a, 4);
    l = v128.load32_splat(a, 20);
    u = v128.and(va, mask16);
    v = v128.and(vb, mask16);
    sa16 = i32x4.add(sa16, i32x4.dot_i16x8_s(u, h));
    ta16 = i32x4.add(ta16, i32x4.dot_i16x8_s(u, l));
    sb16 = i32x4.add(sb16, i32x4.dot_i16x8_s(v, h));
    tb16 = i32x4.add(tb16, i32x4.dot_i16x8_s(v, l));
    a += OCT;
  }
  const ya = finish(v128.load(yp), i32x4.add(sa, i32x4.shr_s(sa16, 4)), i32x4.add(ta, i32x4.shr_s(ta16, 4)), end, sg, sc, inv32768);
  const yb = finish(v128.load(yp, 16), i32x4.add(sb, i32x4.shr_s(sb16, 4)), i32x4.add(tb, i32x4.shr_s(tb16, 4)), end + strip, sg, sc, inv32768);
  v128.store(cp, ya);
  v128.store(cp, yb, 16);
}

/**
 * y = x·W + bias for column-quad pairs [p0, p1) (quads 2p, 2p + 1), M = 1.
 *   act/sums/scaleA from q4_quantize_i16x2; w: records; nq = N/4 quads; bias f32 [Np]; c: output;
 *   streams: far-apart runs of pairs one thread reads at once (the backend passes
 *   GEMV_Q4_I16_STREAMS; 1 reads its pairs in order).
 * K blocks outermost (as in gemv_q4_i8x3): a block's activations (32 KiB at 4096 inputs) stay in
 * L1 while the records stream past; within a block the two quads' strips are `strip` bytes apart.
 * The thread's pairs are cut into `streams` equal runs visited group by group in turn (group g of
 * pair i of every run, then g + 1, ...), as gemv_q4_i8x3 does: more sequential streams in flight
 * per core (docs/kernels.md). Columns sum their groups in order and y waits in c between groups
 * (an f32 store and reload is exact), so the result equals the one-quad formulation bit for bit.
 */
export function gemv_q4_i16x2(
  act: usize, sums: usize, scaleA: usize, K: i32, gs: i32, w: usize, nq: i32, bias: usize, c: usize,
  streams: i32, p0: i32, p1: i32, tid: i32,
): void {
  const G = K / gs;
  const rec: usize = (<usize>gs << 1) + Q4_REC_EXTRA;
  const qb: usize = <usize>gs << 1; // qweight bytes of a record
  const gb = q4_block_groups(gs);
  const mask = v128.load(C_NIB_MASK);
  const mask16 = v128.load(C_NIB_MASK_1);
  const inv32768 = v128.load(C_INV_32768);
  const zero = i32x4.splat(0);
  const S = max(1, streams);
  const len = (p1 - p0) / S; // pairs per run
  const tail = p0 + S * len;
  const ga: usize = <usize>(gs >> 3) * OCT; // activation bytes per group
  for (let g0 = 0; g0 < G; g0 += gb) {
    const gn = min(gb, G - g0);
    const strip: usize = <usize>gn * rec;
    // Pair p's records of this block: blk + 2p·strip, one per group.
    const blk = w + <usize>g0 * nq * rec;
    for (let i = 0; i < len; i++) {
      for (let g = g0; g < g0 + gn; g++) {
        const a = act + <usize>g * ga, off = <usize>(g - g0) * rec;
        const sg = sums + (<usize>g << 3), sc = scaleA + (<usize>g << 2);
        for (let s = 0; s < S; s++) {
          const cq = (p0 + s * len + i) << 1;
          const cp = c + (<usize>cq << 4);
          const yp = g == 0 ? bias + (<usize>cq << 4) : cp;
          pairGroup(yp, cp, blk + <usize>cq * strip + off, strip, a, qb, sg, sc, mask, mask16, inv32768, zero);
        }
      }
    }
    for (let p = tail; p < p1; p++) {
      const cq = p << 1;
      const cp = c + (<usize>cq << 4);
      for (let g = g0; g < g0 + gn; g++) {
        const yp = g == 0 ? bias + (<usize>cq << 4) : cp;
        pairGroup(yp, cp, blk + <usize>cq * strip + <usize>(g - g0) * rec, strip, act + <usize>g * ga, qb,
          sums + (<usize>g << 3), scaleA + (<usize>g << 2), mask, mask16, inv32768, zero);
      }
    }
  }
}
