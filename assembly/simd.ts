// Shared SIMD helpers: fused/unfused multiply-add, the i8 dot-accumulate, and an f32x4 exp.
//
// The same source builds twice (asconfig.json): a plain SIMD128 module and a relaxed-SIMD one.
// `ASC_FEATURE_RELAXED_SIMD` is a compile-time constant, so each build keeps exactly one branch.
// On x86 with FMA, V8 lowers f32x4.relaxed_madd to vfmadd: one instruction, one rounding.
import { C_ONE, C_LOG2E, C_LN2_HI, C_LN2_LO, C_EXP_P0, C_EXP_MAX, C_EXP_MIN, C_RND_MAGIC, C_EXP_BIAS_MAGIC } from "./consts";

/** a·b + c per f32 lane (fused in the relaxed build). */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

/**
 * c + per i32 lane the sum of the four byte products a·b (a signed, b in [0, 127]).
 * Relaxed build: one relaxed dot; SIMD128 build: the same integers through i16 products.
 */
// @ts-ignore: decorator
@inline export function dot_i8_i7_add(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c);
  } else {
    // lo lanes: bytes (0+1, 2+3, 4+5, 6+7), hi lanes: (8+9, …, 14+15); lane j wants bytes 4j..4j+3.
    const lo = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_u(b));
    const hi = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_u(b));
    return i32x4.add(c, i32x4.add(v128.shuffle<i32>(lo, hi, 0, 2, 4, 6), v128.shuffle<i32>(lo, hi, 1, 3, 5, 7)));
  }
}

/** Sum of the four f32 lanes, in the fixed order ((l0 + l2) + (l1 + l3)). */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/**
 * e^x per lane, Cephes expf (cephes/single/expf.c, S. Moshier): x = n·ln2 + r with
 * n = round(x·log2e), ln2 split in two (C1 = 0.693359375 exact in few bits, C2 the rest) so
 * that r is exact; e^r by a degree-7 polynomial (relative error ≈ 1 ulp on |r| ≤ ln2/2);
 * 2^n added straight into the exponent bits. Inputs are clamped to [−87.3, 88.7], the f32 range
 * of normal results, so huge negative inputs give ≈1e-38 rather than 0.
 * Constants come from memory (consts.ts): Node re-creates v128 constants inside loops.
 */
// @ts-ignore: decorator
@inline export function exp4(x0: v128): v128 {
  const x = f32x4.max(f32x4.min(x0, v128.load(C_EXP_MAX)), v128.load(C_EXP_MIN));
  // n = round-half-even(x·log2e) by adding and subtracting 1.5·2^23 (the add rounds to an integer
  // in the current, nearest-even mode: the same n as f32x4.nearest), and t's low mantissa bits
  // are n itself, so 2^n below is an integer add and shift; trunc_sat_f32x4_s, which this
  // replaces, is a sequence of about seven instructions on x64 (saturation and NaN handling).
  const magic = v128.load(C_RND_MAGIC);
  const t = f32x4.add(f32x4.mul(x, v128.load(C_LOG2E)), magic);
  const n = f32x4.sub(t, magic);
  let r = f32x4.sub(x, f32x4.mul(n, v128.load(C_LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, v128.load(C_LN2_LO)));
  let p = v128.load(C_EXP_P0);
  p = madd(p, r, v128.load(C_EXP_P0, 16));
  p = madd(p, r, v128.load(C_EXP_P0, 32));
  p = madd(p, r, v128.load(C_EXP_P0, 48));
  p = madd(p, r, v128.load(C_EXP_P0, 64));
  p = madd(p, r, v128.load(C_EXP_P0, 80));
  const r2 = f32x4.mul(r, r);
  p = f32x4.add(madd(p, r2, r), v128.load(C_ONE));
  const e = i32x4.shl(i32x4.add(t, v128.load(C_EXP_BIAS_MAGIC)), 23);
  return f32x4.mul(p, e);
}
