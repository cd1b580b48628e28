// Vector constants live at fixed addresses at the bottom of every arena memory (below the first
// weight, see docs/memory.md) and are written by `init_consts` when the arena is created.
// Why memory and not v128.const: Binaryen folds splat(constant) into v128.const, and V8 (Node 24)
// re-materialises v128 constants inside loops; a measured loop on f32x4.splat(const) ran 3x slower.
// Loading them from memory into locals keeps them in registers.

export const CONST_BASE: usize = 1024;
// Each slot is one v128 (16 bytes).
export const C_ONE: usize = CONST_BASE + 0;
export const C_HALF: usize = CONST_BASE + 16;
export const C_LOG2E: usize = CONST_BASE + 32;
export const C_LN2_HI: usize = CONST_BASE + 48;
export const C_LN2_LO: usize = CONST_BASE + 64;
export const C_EXP_MAX: usize = CONST_BASE + 80;
export const C_EXP_MIN: usize = CONST_BASE + 96;
export const C_I127: usize = CONST_BASE + 112;
export const C_EXP_P0: usize = CONST_BASE + 128; // 6 slots, highest degree first
export const C_ERFC_P0: usize = CONST_BASE + 224; // 10 slots, highest degree first
export const C_INV_SQRT2: usize = CONST_BASE + 384;
export const C_TWO: usize = CONST_BASE + 400;
export const C_NIB_MASK: usize = CONST_BASE + 416; // 0x000F in every i16 lane
export const C_F16_EM: usize = CONST_BASE + 432; // 0x7FFF: half exponent+mantissa
export const C_F16_SIGN: usize = CONST_BASE + 448; // 0x8000
export const C_F16_SCALE: usize = CONST_BASE + 464; // 2^112 = 2^(127−15)
export const C_F16_INF: usize = CONST_BASE + 480; // 0x7C00 << 13: half inf/NaN threshold
export const C_F32_INF: usize = CONST_BASE + 496; // 0x7F800000
export const C_NEG_HALF: usize = CONST_BASE + 512;
export const C_I32_15: usize = CONST_BASE + 528; // 15 in every i32 lane
export const C_ZERO8: usize = CONST_BASE + 544; // 8 f32 zeros: the "bias" of bias-free tiles
export const C_INV_32768: usize = CONST_BASE + 576; // 2^-15: weight of the second int16 level
export const C_NIB_MASK_1: usize = CONST_BASE + 592; // 0x00F0 in every i16 lane (nibble 1 in place)
export const C_F16_KEEP: usize = CONST_BASE + 608; // 0x8FFFFFFF: sign + f32 exponent bits 0..4 + mantissa
export const C_BYTE_NIB: usize = CONST_BASE + 624; // 0x0F in every byte
export const C_INV_256: usize = CONST_BASE + 640; // 2^-8: weight of the lowest 8-bit digit (gemv_q4_i8.ts)
export const C_EXP_NEGLIGIBLE: usize = CONST_BASE + 656; // ln 2^-100: softmax terms below it are 0 (attention.ts)
export const C_RND_MAGIC: usize = CONST_BASE + 672; // 1.5·2^23: x + it rounds x to an integer (simd.ts exp4)
export const C_EXP_BIAS_MAGIC: usize = CONST_BASE + 688; // 127 − bits(1.5·2^23), i32
export const CONST_END: usize = CONST_BASE + 704;

function splatF(at: usize, v: f32): void {
  v128.store(at, f32x4.splat(v));
}
function splatI(at: usize, v: i32): void {
  v128.store(at, i32x4.splat(v));
}

/** Write the constant table. Called once per arena memory, from one thread. */
export function init_consts(): void {
  splatF(C_ONE, 1.0);
  splatF(C_HALF, 0.5);
  splatF(C_NEG_HALF, -0.5);
  splatF(C_TWO, 2.0);
  // Cephes expf.c: LOG2EF, C1 = 0.693359375, C2 = -2.12194440e-4, MAXLOGF/MINLOGF.
  splatF(C_LOG2E, 1.44269504088896341);
  splatF(C_LN2_HI, 0.693359375);
  splatF(C_LN2_LO, -2.12194440e-4);
  splatF(C_EXP_MAX, 88.3762626647949);
  splatF(C_EXP_MIN, -87.3365447505531);
  splatI(C_I127, 127);
  // Cephes expf.c polynomial for (e^r − 1 − r)/r², highest degree first.
  splatF(C_EXP_P0 + 0, 1.9875691500e-4);
  splatF(C_EXP_P0 + 16, 1.3981999507e-3);
  splatF(C_EXP_P0 + 32, 8.3334519073e-3);
  splatF(C_EXP_P0 + 48, 4.1665795894e-2);
  splatF(C_EXP_P0 + 64, 1.6666665459e-1);
  splatF(C_EXP_P0 + 80, 5.0000001201e-1);
  // Numerical Recipes in C (2nd ed.) §6.2, erfcc: Chebyshev fit with fractional error < 1.2e-7
  // everywhere; highest degree first.
  splatF(C_ERFC_P0 + 0, 0.17087277);
  splatF(C_ERFC_P0 + 16, -0.82215223);
  splatF(C_ERFC_P0 + 32, 1.48851587);
  splatF(C_ERFC_P0 + 48, -1.13520398);
  splatF(C_ERFC_P0 + 64, 0.27886807);
  splatF(C_ERFC_P0 + 80, -0.18628806);
  splatF(C_ERFC_P0 + 96, 0.09678418);
  splatF(C_ERFC_P0 + 112, 0.37409196);
  splatF(C_ERFC_P0 + 128, 1.00002368);
  splatF(C_ERFC_P0 + 144, -1.26551223);
  splatF(C_INV_SQRT2, 0.7071067811865476);
  splatI(C_NIB_MASK, 0x000f000f);
  splatI(C_F16_EM, 0x7fff);
  splatI(C_F16_SIGN, 0x8000);
  splatI(C_F16_SCALE, 0x77800000);
  splatI(C_F16_INF, 0x7c00 << 13);
  splatI(C_F32_INF, 0x7f800000);
  splatI(C_I32_15, 15);
  splatI(C_ZERO8, 0);
  splatI(C_ZERO8 + 16, 0);
  splatF(C_INV_32768, 1.0 / 32768);
  splatI(C_NIB_MASK_1, 0x00f000f0);
  splatI(C_F16_KEEP, 0x8fffffff);
  splatI(C_BYTE_NIB, 0x0f0f0f0f);
  splatF(C_INV_256, 1.0 / 256);
  splatF(C_EXP_NEGLIGIBLE, -69.31471805599453);
  splatF(C_RND_MAGIC, 12582912.0);
  splatI(C_EXP_BIAS_MAGIC, 127 - 0x4b400000);
}
