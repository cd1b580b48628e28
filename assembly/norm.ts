// Row normalisations over the last dimension. One row is handled by one thread from start to end,
// so results do not depend on the thread count. Sums run in 4 f32 lanes (columns k ≡ lane mod 4),
// folded at the end in a fixed order; the scalar tail (cols % 4) is added last.
import { hsum } from "./simd";

/** Σ x over one row of n floats. */
// @ts-ignore: decorator
@inline function rowSum(x: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= n; k += 4) acc = f32x4.add(acc, v128.load(x + (<usize>k << 2)));
  let s = hsum(acc);
  for (; k < n; k++) s += load<f32>(x + (<usize>k << 2));
  return s;
}

/** Σ (x − mean)² over one row. */
// @ts-ignore: decorator
@inline function rowSqDev(x: usize, n: i32, mean: f32): f32 {
  const mv = f32x4.splat(mean);
  let acc = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    const d = f32x4.sub(v128.load(x + (<usize>k << 2)), mv);
    acc = f32x4.add(acc, f32x4.mul(d, d));
  }
  let s = hsum(acc);
  for (; k < n; k++) {
    const d = load<f32>(x + (<usize>k << 2)) - mean;
    s += d * d;
  }
  return s;
}

/** out = (x − mean)/sqrt(var + eps)·w + b per row (biased variance, two passes). Rows [r0, r1). */
export function layer_norm(x: usize, w: usize, b: usize, out: usize, cols: i32, eps: f32, r0: i32, r1: i32, tid: i32): void {
  for (let r = r0; r < r1; r++) {
    const xr = x + ((<usize>r * cols) << 2);
    const orow = out + ((<usize>r * cols) << 2);
    const mean = rowSum(xr, cols) / <f32>cols;
    const inv: f32 = <f32>1 / sqrt<f32>(rowSqDev(xr, cols, mean) / <f32>cols + eps);
    const mv = f32x4.splat(mean), iv = f32x4.splat(inv);
    let k = 0;
    for (; k + 4 <= cols; k += 4) {
      const o: usize = <usize>k << 2;
      const n = f32x4.mul(f32x4.sub(v128.load(xr + o), mv), iv);
      v128.store(orow + o, f32x4.add(f32x4.mul(n, v128.load(w + o)), v128.load(b + o)));
    }
    for (; k < cols; k++) {
      const o: usize = <usize>k << 2;
      store<f32>(orow + o, (load<f32>(xr + o) - mean) * inv * load<f32>(w + o) + load<f32>(b + o));
    }
  }
}

/** out = x / sqrt(mean(x²) + eps) · w per row. Rows [r0, r1). */
export function rms_norm(x: usize, w: usize, out: usize, cols: i32, eps: f32, r0: i32, r1: i32, tid: i32): void {
  for (let r = r0; r < r1; r++) {
    const xr = x + ((<usize>r * cols) << 2);
    const orow = out + ((<usize>r * cols) << 2);
    const inv: f32 = <f32>1 / sqrt<f32>(rowSqDev(xr, cols, 0) / <f32>cols + eps);
    const iv = f32x4.splat(inv);
    let k = 0;
    for (; k + 4 <= cols; k += 4) {
      const o: usize = <usize>k << 2;
      v128.store(orow + o, f32x4.mul(f32x4.mul(v128.load(xr + o), iv), v128.load(w + o)));
    }
    for (; k < cols; k++) {
      const o: usize = <usize>k << 2;
      store<f32>(orow + o, load<f32>(xr + o) * inv * load<f32>(w + o));
    }
  }
}
