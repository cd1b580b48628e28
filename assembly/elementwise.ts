// Element-wise kernels over f32 arrays. Each works on an index range [i0, i1) given by the thread
// pool (element ranges are multiples of 4 except at the very end), so the per-element result never
// depends on the thread count.
import { madd, exp4 } from "./simd";
import { C_ONE, C_HALF, C_TWO, C_INV_SQRT2, C_ERFC_P0 } from "./consts";

/** out = a + b over elements [i0, i1). */
export function add(a: usize, b: usize, out: usize, i0: i32, i1: i32, tid: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o: usize = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < i1; i++) {
    const o: usize = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

/** out[r, :] = a[r, :] + b[:] for rows [r0, r1). */
export function add_rows(a: usize, b: usize, out: usize, cols: i32, r0: i32, r1: i32, tid: i32): void {
  for (let r = r0; r < r1; r++) {
    const base: usize = (<usize>r * cols) << 2;
    let k = 0;
    for (; k + 4 <= cols; k += 4) {
      const o: usize = <usize>k << 2;
      v128.store(out + base + o, f32x4.add(v128.load(a + base + o), v128.load(b + o)));
    }
    for (; k < cols; k++) {
      const o: usize = <usize>k << 2;
      store<f32>(out + base + o, load<f32>(a + base + o) + load<f32>(b + o));
    }
  }
}

/** out[r, :] = a[r, :] · s[r] for rows [r0, r1). */
export function scale_rows(a: usize, s: usize, out: usize, cols: i32, r0: i32, r1: i32, tid: i32): void {
  for (let r = r0; r < r1; r++) {
    const base: usize = (<usize>r * cols) << 2;
    const sr = load<f32>(s + (<usize>r << 2));
    const sv = f32x4.splat(sr);
    let k = 0;
    for (; k + 4 <= cols; k += 4) {
      const o: usize = base + (<usize>k << 2);
      v128.store(out + o, f32x4.mul(v128.load(a + o), sv));
    }
    for (; k < cols; k++) {
      const o: usize = base + (<usize>k << 2);
      store<f32>(out + o, load<f32>(a + o) * sr);
    }
  }
}

/**
 * GELU, exact form x·½·(1 + erf(x/√2)) = ½·x·erfc(−x/√2).
 * erfc by Numerical Recipes' erfcc (2nd ed. §6.2): for z = |y|, t = 1/(1 + z/2),
 *   erfc(z) = t·exp(−z² + P(t)) with a degree-9 Chebyshev-fitted P, fractional error < 1.2e-7
 *   everywhere; erfc(−z) = 2 − erfc(z).
 * Writing GELU through erfc avoids the cancellation of 1 + erf(y) for negative x: the result keeps
 * f32 relative accuracy even where it is tiny.
 */
// @ts-ignore: decorator
@inline function gelu4(x: v128): v128 {
  const one = v128.load(C_ONE), half = v128.load(C_HALF);
  const z = f32x4.abs(f32x4.mul(x, v128.load(C_INV_SQRT2)));
  const t = f32x4.div(one, madd(z, half, one));
  let p = v128.load(C_ERFC_P0);
  for (let i = 1; i < 10; i++) p = madd(p, t, v128.load(C_ERFC_P0 + (<usize>i << 4)));
  const e = f32x4.mul(t, exp4(f32x4.sub(p, f32x4.mul(z, z))));
  // y = −x/√2: y ≥ 0 (x ≤ 0) → erfc(y) = e; otherwise 2 − e.
  const erfcY = v128.bitselect(e, f32x4.sub(v128.load(C_TWO), e), f32x4.le(x, f32x4.splat(0)));
  return f32x4.mul(f32x4.mul(x, half), erfcY);
}

// @ts-ignore: decorator
@inline function geluScalar(x: f32): f32 {
  return f32x4.extract_lane(gelu4(f32x4.splat(x)), 0);
}

export function gelu(x: usize, out: usize, i0: i32, i1: i32, tid: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o: usize = <usize>i << 2;
    v128.store(out + o, gelu4(v128.load(x + o)));
  }
  for (; i < i1; i++) {
    const o: usize = <usize>i << 2;
    store<f32>(out + o, geluScalar(load<f32>(x + o)));
  }
}

/** a·silu(b) = a·b / (1 + e^(−b)). */
// @ts-ignore: decorator
@inline function swiglu4(a: v128, b: v128): v128 {
  const den = f32x4.add(v128.load(C_ONE), exp4(f32x4.neg(b)));
  return f32x4.div(f32x4.mul(a, b), den);
}

export function swiglu(a: usize, b: usize, out: usize, i0: i32, i1: i32, tid: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o: usize = <usize>i << 2;
    v128.store(out + o, swiglu4(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < i1; i++) {
    const o: usize = <usize>i << 2;
    store<f32>(out + o, f32x4.extract_lane(swiglu4(f32x4.splat(load<f32>(a + o)), f32x4.splat(load<f32>(b + o))), 0));
  }
}
