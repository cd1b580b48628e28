// Decode GEMV (M = 1) on 16-bit dense panels: y[Np] = x[K] · Wᵀ + bias, reading the f16/bf16
// weights straight from the panel layout of gemm.ts (panel[p][k][8 columns]) and widening them in
// registers. The GEMM path converts every KC×8 block into an L1 scratch block and reads it back,
// which for one row costs more than the product itself; here each weight is touched once.
//
// Widening, per v128 of 8 halves h (4 ops per 4 weights, no table):
//   interleave with zero (i16 shuffle) → i32 lanes h << 16: bf16 is then already the f32.
//   f16: arithmetic shift right by 3 puts the exponent at f32 bits 23..27 and the mantissa at
//   13..22 (bits 28..30 get copies of the sign), mask 0x8FFFFFFF clears those copies, and × 2^112
//   rebiases the exponent (127 − 15): exact for normal and subnormal halves alike (a subnormal half
//   is then an f32 subnormal times a power of two). Inf/NaN halves would come out finite, so
//   pack.ts sends weights containing them to the GEMM path instead (f16Census).
// Summation order per output column: bias, then k = 0, 1, …, K−1, one multiply-add each — the
// same as gemm.ts's one-row tile, so results do not depend on the thread count (threads split
// by panels) and match the GEMM path bit for bit — except for weights with subnormal halves:
//
// Subnormal halves (exponent 0, mantissa ≠ 0) come out of the widening as f32 subnormals, and a
// multiply with a subnormal operand takes a microcode assist on x86 (~100 cycles). At 0.24% of a
// random-normal 151936 × 4096 lm_head that made this GEMV 69–72 ms instead of 53 (docs/kernels.md).
// So pack.ts stores them as +0 in the panels and lists them per panel, sorted by k, as
// (k·8 + column, exact f32 value) pairs (packSubnormalTable). After its panels, each thread adds
// its panels' listed products, y += x_k·v in list order (addListed). A column with listed halves
// is then the same sum in another order: f32 rounding differs from the GEMM path (which writes
// the values back into its converted blocks, in place) in the last bits; results still do not
// depend on the thread count. Adding them in place instead (cutting the vector loop at each
// listed k) was exact to the GEMM but cost as much as the assists (69 ms: branch misses).
import { madd } from "./simd";
import { C_F16_KEEP, C_F16_SCALE } from "./consts";

/** y[col] += x[k]·v for the listed halves of panels [p0, p1) (offs = 0: none). */
function addListed(x: usize, c: usize, offs: usize, ents: usize, p0: i32, p1: i32): void {
  if (offs == 0) return;
  for (let p = p0; p < p1; p++) {
    const e = load<u32>(offs + (<usize>p << 2), 4);
    const cp = c + (<usize>p << 5);
    for (let i = load<u32>(offs + (<usize>p << 2)); i < e; i++) {
      const key = load<u32>(ents + (<usize>i << 3));
      const at = cp + (<usize>(key & 7) << 2);
      store<f32>(at, load<f32>(at) + load<f32>(x + (<usize>(key >> 3) << 2)) * load<f32>(ents + (<usize>i << 3), 4));
    }
  }
}

// @ts-ignore: decorator
@inline function widenLo(h: v128, zero: v128, f16: bool, keep: v128, scale: v128): v128 {
  const u = v128.shuffle<i16>(zero, h, 0, 8, 1, 9, 2, 10, 3, 11);
  return f16 ? f32x4.mul(v128.and(i32x4.shr_s(u, 3), keep), scale) : u;
}

// @ts-ignore: decorator
@inline function widenHi(h: v128, zero: v128, f16: bool, keep: v128, scale: v128): v128 {
  const u = v128.shuffle<i16>(zero, h, 4, 12, 5, 13, 6, 14, 7, 15);
  return f16 ? f32x4.mul(v128.and(i32x4.shr_s(u, 3), keep), scale) : u;
}

// Panels p and p + 1 over the k range whose x bytes are [o0, o1): four independent accumulator
// chains hide the multiply-add latency. The chains start from the bias at o0 = 0, else from c,
// where the previous range left them (an f32 store and reload is exact).
// @ts-ignore: decorator
@inline function pair(f16: bool, x: usize, w: usize, pstride: usize, bias: usize, c: usize, p: i32, o0: usize, o1: usize,
  zero: v128, keep: v128, scale: v128): void {
  let b0 = w + <usize>p * pstride + (o0 << 2), b1 = b0 + pstride;
  const cp = c + (<usize>p << 5);
  const yp = o0 == 0 ? bias + (<usize>p << 5) : cp;
  let c00 = v128.load(yp), c01 = v128.load(yp, 16), c10 = v128.load(yp, 32), c11 = v128.load(yp, 48);
  for (let off = o0; off < o1; off += 4) {
    const xv = v128.load32_splat(x + off);
    const h0 = v128.load(b0), h1 = v128.load(b1);
    c00 = madd(xv, widenLo(h0, zero, f16, keep, scale), c00);
    c01 = madd(xv, widenHi(h0, zero, f16, keep, scale), c01);
    c10 = madd(xv, widenLo(h1, zero, f16, keep, scale), c10);
    c11 = madd(xv, widenHi(h1, zero, f16, keep, scale), c11);
    b0 += 16;
    b1 += 16;
  }
  v128.store(cp, c00); v128.store(cp, c01, 16); v128.store(cp, c10, 32); v128.store(cp, c11, 48);
}

// @ts-ignore: decorator
@inline function panels(f16: bool, x: usize, K: i32, w: usize, bias: usize, c: usize, streams: i32, turnK: i32, p0: i32, p1: i32): void {
  const zero = i32x4.splat(0);
  const keep = v128.load(C_F16_KEEP), scale = v128.load(C_F16_SCALE);
  const pstride: usize = <usize>K << 4; // bytes per panel: K × 8 halves
  const end: usize = <usize>K << 2;
  // The thread's pairs of panels cut into S runs of `len` pairs; pair i of every run in turn,
  // turnK inputs at a time (one stream alone takes all of K at once, as before).
  const S = max(1, streams);
  const len = ((p1 - p0) >> 1) / S;
  const step: usize = S == 1 ? end : <usize>max(1, turnK) << 2;
  for (let i = 0; i < len; i++) {
    for (let o0: usize = 0; o0 < end; o0 += step) {
      const o1 = min(o0 + step, end);
      for (let s = 0; s < S; s++) pair(f16, x, w, pstride, bias, c, p0 + ((s * len + i) << 1), o0, o1, zero, keep, scale);
    }
  }
  // Leftover pairs (fewer than S) in order, then an odd last panel.
  let p = p0 + ((S * len) << 1);
  for (; p + 2 <= p1; p += 2) pair(f16, x, w, pstride, bias, c, p, 0, end, zero, keep, scale);
  for (; p < p1; p++) {
    let b0 = w + <usize>p * pstride;
    const bp = bias + (<usize>p << 5);
    let c00 = v128.load(bp), c01 = v128.load(bp, 16);
    for (let off: usize = 0; off < end; off += 4) {
      const xv = v128.load32_splat(x + off);
      const h0 = v128.load(b0);
      c00 = madd(xv, widenLo(h0, zero, f16, keep, scale), c00);
      c01 = madd(xv, widenHi(h0, zero, f16, keep, scale), c01);
      b0 += 16;
    }
    const cp = c + (<usize>p << 5);
    v128.store(cp, c00); v128.store(cp, c01, 16);
  }
}

/**
 * y = x · Wᵀ + bias for panels [p0, p1) (this thread's share). mode 1: f16 panels, 2: bf16.
 *   x f32 [K]; w: panels [Np/8][K][8] u16; bias f32 [Np]; c f32 [Np];
 *   offs, ents: an f16 weight's table of subnormal halves (offs = 0: none; pack.ts);
 *   streams: far-apart runs of panel pairs one thread reads at once; turnK: inputs per run and
 *   turn (the backend passes GEMV16_STREAMS and GEMV16_TURN_K; streams 1 reads its pairs in order).
 */
export function gemv16(mode: i32, x: usize, K: i32, w: usize, bias: usize, c: usize, offs: usize, ents: usize,
  streams: i32, turnK: i32, p0: i32, p1: i32, tid: i32): void {
  if (mode == 1) {
    panels(true, x, K, w, bias, c, streams, turnK, p0, p1);
    addListed(x, c, offs, ents, p0, p1);
  } else {
    panels(false, x, K, w, bias, c, streams, turnK, p0, p1);
  }
}
