// Machine-limit probes for the benchmark (bench/bench.ts): register-only arithmetic loops and a
// streaming read. They share the kernels' build (same SIMD flavour, same engine) so that "achieved
// vs limit" compares like with like. Operands come in as parameters (never constants; see consts.ts).
import { dot_i8_i7_add, madd } from "./simd";

/**
 * f32 multiply-add peak: 12 independent accumulator chains (latency 4 × 2 pipes needs ≥ 8),
 * `iters` rounds of 12 multiply-adds on 4 lanes = iters·12·4·2 flop. Relaxed build: fused madd.
 */
export function peak_f32(iters: i32, a: f32, b: f32): f32 {
  const x = f32x4.splat(a), y = f32x4.splat(b);
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  let c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (let i = 0; i < iters; i++) {
    c0 = madd(x, c0, y); c1 = madd(x, c1, y); c2 = madd(x, c2, y); c3 = madd(x, c3, y);
    c4 = madd(x, c4, y); c5 = madd(x, c5, y); c6 = madd(x, c6, y); c7 = madd(x, c7, y);
    c8 = madd(x, c8, y); c9 = madd(x, c9, y); c10 = madd(x, c10, y); c11 = madd(x, c11, y);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)));
  return f32x4.extract_lane(f32x4.add(s, f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11))), 0);
}

/**
 * i32x4.dot_i16x8_s peak, accumulated with i32x4.add as a real kernel must: 8 chains,
 * iters·8·8 multiply-accumulates (2 ops each).
 */
export function peak_dot_i16(iters: i32, a: i32, b: i32): i32 {
  const x = i16x8.splat(<i16>a), y = i16x8.splat(<i16>b);
  let c0 = i32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  let z = x;
  for (let i = 0; i < iters; i++) {
    c0 = i32x4.add(c0, i32x4.dot_i16x8_s(z, y)); c1 = i32x4.add(c1, i32x4.dot_i16x8_s(x, z));
    c2 = i32x4.add(c2, i32x4.dot_i16x8_s(z, x)); c3 = i32x4.add(c3, i32x4.dot_i16x8_s(y, z));
    c4 = i32x4.add(c4, i32x4.dot_i16x8_s(z, y)); c5 = i32x4.add(c5, i32x4.dot_i16x8_s(x, z));
    c6 = i32x4.add(c6, i32x4.dot_i16x8_s(z, x)); c7 = i32x4.add(c7, i32x4.dot_i16x8_s(y, z));
    z = i16x8.add(z, y);
  }
  const s = i32x4.add(i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3)), i32x4.add(i32x4.add(c4, c5), i32x4.add(c6, c7)));
  return i32x4.extract_lane(s, 0);
}

/**
 * i32x4.relaxed_dot_i8x16_i7x16_add_s peak (vpdpbusd with AVX-VNNI; the SIMD128 build runs its
 * emulation, simd.ts): 10 chains (latency ~4 × 2 per cycle needs ≥ 8), iters·10·16 byte
 * multiply-accumulates (2 ops each).
 */
export function peak_dot_i8(iters: i32, a: i32, b: i32): i32 {
  const x = i8x16.splat(<i8>a), y = i8x16.splat(<i8>(b & 127));
  let c0 = i32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0;
  let z = x;
  for (let i = 0; i < iters; i++) {
    c0 = dot_i8_i7_add(z, y, c0); c1 = dot_i8_i7_add(x, y, c1); c2 = dot_i8_i7_add(z, y, c2);
    c3 = dot_i8_i7_add(x, y, c3); c4 = dot_i8_i7_add(z, y, c4); c5 = dot_i8_i7_add(x, y, c5);
    c6 = dot_i8_i7_add(z, y, c6); c7 = dot_i8_i7_add(x, y, c7); c8 = dot_i8_i7_add(z, y, c8);
    c9 = dot_i8_i7_add(x, y, c9);
    z = i8x16.add(z, x);
  }
  const s = i32x4.add(i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3)), i32x4.add(i32x4.add(c4, c5), i32x4.add(c6, c7)));
  return i32x4.extract_lane(i32x4.add(s, i32x4.add(c8, c9)), 0);
}

/** Streaming read of [p, p + bytes) with 4 independent v128 accumulators (bytes % 64 == 0). */
export function stream_read(p: usize, bytes: usize, u0: i32, u1: i32, tid: i32): i32 {
  let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const end = p + bytes;
  for (let q = p; q < end; q += 64) {
    a0 = v128.xor(a0, v128.load(q));
    a1 = v128.xor(a1, v128.load(q, 16));
    a2 = v128.xor(a2, v128.load(q, 32));
    a3 = v128.xor(a3, v128.load(q, 48));
  }
  return i32x4.extract_lane(v128.xor(v128.xor(a0, a1), v128.xor(a2, a3)), 0);
}

/** Threaded probes: each thread runs the loop once; [u0, u1) unused except for the split. */
export function peak_f32_t(iters: i32, a: f32, b: f32, out: usize, u0: i32, u1: i32, tid: i32): void {
  store<f32>(out + (<usize>tid << 2), peak_f32(iters, a, b));
}
export function peak_dot_i16_t(iters: i32, a: i32, b: i32, out: usize, u0: i32, u1: i32, tid: i32): void {
  store<i32>(out + (<usize>tid << 2), peak_dot_i16(iters, a, b));
}
export function peak_dot_i8_t(iters: i32, a: i32, b: i32, out: usize, u0: i32, u1: i32, tid: i32): void {
  store<i32>(out + (<usize>tid << 2), peak_dot_i8(iters, a, b));
}
/** Thread tid reads its own slice of `bytes` bytes starting at p + tid·bytes. */
export function stream_read_t(p: usize, bytes: usize, out: usize, u0: i32, u1: i32, tid: i32): void {
  store<i32>(out + (<usize>tid << 2), stream_read(p + <usize>tid * bytes, bytes, 0, 0, 0));
}


/**
 * Multi-stream read: thread tid's slice [p + tid·bytes, +bytes) is cut into `streams` equal parts
 * that are read in lockstep, `step` bytes (64 or 128) from each part per round. It asks whether
 * several far-apart sequential streams per core (each followed by its own L2 streamer entry) get
 * more lines in flight than one (bytes % (streams·step) == 0). Measured: docs/kernels.md.
 * Two loop bodies rather than an inner loop over `step`: that loop's overhead alone cost ~15%
 * at one stream against stream_read.
 */
export function stream_read_multi_t(p: usize, bytes: usize, streams: i32, step: i32, out: usize, u0: i32, u1: i32, tid: i32): void {
  const base = p + <usize>tid * bytes;
  const part = bytes / <usize>streams;
  const end = base + part;
  let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  if (step == 128) {
    for (let q = base; q < end; q += 128) {
      for (let r = q; r < q + bytes; r += part) {
        a0 = v128.xor(a0, v128.load(r)); a1 = v128.xor(a1, v128.load(r, 16));
        a2 = v128.xor(a2, v128.load(r, 32)); a3 = v128.xor(a3, v128.load(r, 48));
        a0 = v128.xor(a0, v128.load(r, 64)); a1 = v128.xor(a1, v128.load(r, 80));
        a2 = v128.xor(a2, v128.load(r, 96)); a3 = v128.xor(a3, v128.load(r, 112));
      }
    }
  } else {
    for (let q = base; q < end; q += 64) {
      for (let r = q; r < q + bytes; r += part) {
        a0 = v128.xor(a0, v128.load(r)); a1 = v128.xor(a1, v128.load(r, 16));
        a2 = v128.xor(a2, v128.load(r, 32)); a3 = v128.xor(a3, v128.load(r, 48));
      }
    }
  }
  store<i32>(out + (<usize>tid << 2), i32x4.extract_lane(v128.xor(v128.xor(a0, a1), v128.xor(a2, a3)), 0));
}
