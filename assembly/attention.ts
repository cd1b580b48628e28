// Multi-head scaled-dot-product attention, one (query row, head) at a time.
//   q [Tq, H, D], k/v [Tk, H, D], out [Tq, H, D]
//   out[t,h] = Σ_s softmax_s(scale·q[t,h]·k[s,h]) · v[s,h], over s < Tk, or, when causal,
//   s ≤ queryOffset + t (the query's absolute position; queryOffset = number of cached keys).
// Tq ≠ Tk covers the resampler's cross-attention (256 queries over 1024 keys) and KV-cache decode.
//
// Work units u = h·Tq + t (head-major): consecutive units of one thread share the head's K and V
// (2·Tk·D·4 bytes, 852 KB for the ViT), which therefore stay in L2. Each unit is computed by one
// thread in a fixed order, so the thread count never changes a result.
// Scratch: Tk f32 scores per thread at scratch + tid·Tk·4.
import { madd, hsum, exp4 } from "./simd";

/** q·k over D floats (D % 4 handled by a scalar tail). */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, D: i32): f32 {
  let s0 = f32x4.splat(0), s1 = s0;
  let d = 0;
  for (; d + 8 <= D; d += 8) {
    const o: usize = <usize>d << 2;
    s0 = madd(v128.load(a + o), v128.load(b + o), s0);
    s1 = madd(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  for (; d + 4 <= D; d += 4) {
    const o: usize = <usize>d << 2;
    s0 = madd(v128.load(a + o), v128.load(b + o), s0);
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; d < D; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2));
  return s;
}

export function attention(
  q: usize, k: usize, v: usize, out: usize, Tq: i32, Tk: i32, H: i32, D: i32,
  scale: f32, causal: i32, qOffset: i32, scratch: usize, u0: i32, u1: i32, tid: i32,
): void {
  const p = scratch + ((<usize>tid * Tk) << 2);
  const rowB: usize = (<usize>H * D) << 2; // bytes between consecutive positions
  for (let u = u0; u < u1; u++) {
    const h = u / Tq, t = u % Tq;
    const n = causal ? min(Tk, qOffset + t + 1) : Tk;
    const qp = q + ((<usize>(t * H + h) * D) << 2);
    const kp = k + ((<usize>h * D) << 2);
    const vp = v + ((<usize>h * D) << 2);
    // 1. scores and their maximum
    let mx: f32 = -Infinity;
    for (let s = 0; s < n; s++) {
      const sc = dot(qp, kp + <usize>s * rowB, D) * scale;
      store<f32>(p + (<usize>s << 2), sc);
      mx = max(mx, sc);
    }
    // 2. e^(score − max) and their sum (4 lanes, folded in fixed order, then the tail)
    const mv = f32x4.splat(mx);
    let acc = f32x4.splat(0);
    let s = 0;
    for (; s + 4 <= n; s += 4) {
      const o: usize = <usize>s << 2;
      const e = exp4(f32x4.sub(v128.load(p + o), mv));
      v128.store(p + o, e);
      acc = f32x4.add(acc, e);
    }
    let sum = hsum(acc);
    for (; s < n; s++) {
      const o: usize = <usize>s << 2;
      const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(p + o) - mx)), 0);
      store<f32>(p + o, e);
      sum += e;
    }
    // 3. out = Σ_s e_s·v_s / sum, accumulated in the output row (L1-resident)
    const op = out + ((<usize>(t * H + h) * D) << 2);
    let d = 0;
    for (; d + 4 <= D; d += 4) v128.store(op + (<usize>d << 2), f32x4.splat(0));
    for (; d < D; d++) store<f32>(op + (<usize>d << 2), 0);
    for (let j = 0; j < n; j++) {
      const w = load<f32>(p + (<usize>j << 2));
      const wv = f32x4.splat(w);
      const vr = vp + <usize>j * rowB;
      d = 0;
      for (; d + 4 <= D; d += 4) {
        const o: usize = <usize>d << 2;
        v128.store(op + o, madd(wv, v128.load(vr + o), v128.load(op + o)));
      }
      for (; d < D; d++) {
        const o: usize = <usize>d << 2;
        store<f32>(op + o, load<f32>(op + o) + w * load<f32>(vr + o));
      }
    }
    const inv = f32x4.splat(<f32>1 / sum);
    const invS: f32 = <f32>1 / sum;
    d = 0;
    for (; d + 4 <= D; d += 4) {
      const o: usize = <usize>d << 2;
      v128.store(op + o, f32x4.mul(v128.load(op + o), inv));
    }
    for (; d < D; d++) store<f32>(op + (<usize>d << 2), load<f32>(op + (<usize>d << 2)) * invS);
  }
}
