// What the backend (backend.ts) passes the kernels besides data: the pool's function table and the
// blocking constants, each with where its value comes from.

/** Kernels run through the pool (the worker function table). */
export const KERNELS = [
  "gemm", "gemv16", "gemm_q4_i16", "gemv_q4_i16x2", "gemv_q4_f32", "gemv_q4_i8x3", "gemm_q4_i8x3", "q4_quantize_digits_t", "layer_norm", "rms_norm", "add", "add_rows",
  "scale_rows", "gelu", "swiglu", "rope", "attn_pack", "attention", "attn_decode", "peak_f32_t", "peak_dot_i16_t", "peak_dot_i8_t",
  "stream_read_t", "stream_read_multi_t",
];

/** Blocking of the f32 GEMM (assembly/gemm.ts): KC·8·4 = 8 KiB panel block, MC·KC·4 ≤ 256 KiB of A. */
export const KC = 256;
export const MC = 192;
/** Rows per block of the int4 × int16 kernel (its activations, MB·K·2 bytes, stay in L2). */
export const MB_Q4 = 16;
/**
 * Far-apart record streams one thread of the int8-digit GEMV reads at once (assembly/gemv_q4_i8.ts):
 * measured on 2 threads (docs/kernels.md), 4096 × 11008 out of cache 8.2 GB/s with 1, 15.2 with
 * 4, 16.9 with 8, 16.6 with 16; in cache 21.6 → 21.2.
 */
export const GEMV_Q4_STREAMS = 8;
/**
 * The same for the int16 GEMV (assembly/gemv_q4_i16x2.ts), runs of column-quad pairs: measured on
 * 2 threads (docs/kernels.md), out of cache 4096 × 11008 10.4–10.9 GB/s before, 11.4–11.5 with 2,
 * 11.7 with 8, 11.3–11.7 with 16; 4096 × 4096 8.9–9.0 before, 10.3 with 2, 10.1–10.2 with 8.
 */
export const GEMV_Q4_I16_STREAMS = 8;
/**
 * Far-apart runs of panel pairs one thread of the f16/bf16 decode GEMV reads at once, and inputs
 * per run and turn (assembly/gemv16.ts: 256 B of each of the pair's two panels): measured on 2
 * threads (docs/kernels.md), 151936 × 4096 f16 (1.24 GB) 59.9 ms with 1, 52.6 with 2, 50.8 with
 * 4, 51.8 with 8, 54.7 with 16 (32 inputs per turn); 4 runs of 16 inputs 50.1, of 8 54.5.
 */
export const GEMV16_STREAMS = 4, GEMV16_TURN_K = 16;
/** Query rows per attention work unit (assembly/attention.ts QB). */
export const ATTN_QB = 18;
/** Below this many multiply-adds (or elements) an op runs on the calling thread only. */
export const PARALLEL_MIN_WORK = 1 << 15;
