// Deterministic test inputs shared by the WebGPU tests (test/webgpu-acquire.ts re-exports it) and
// bench/webgpu-check.ts, so that a case means the same values in both.

/** Deterministic uniform values in [lo, hi) (xorshift32). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = lo + (s / 2 ** 32) * (hi - lo);
  }
  return out;
}
