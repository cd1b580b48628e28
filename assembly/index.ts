// Entry point of the kernel module: re-exports every op family.
// Calling convention of threaded kernels: the last three parameters are (start, end, tid): the
// half-open range of work units given to this thread and its index (for per-thread scratch).
export { init_consts } from "./consts";
export { gemm } from "./gemm";
export { gemv16 } from "./gemv16";
export { q4_quantize_rows, gemm_q4_i16, gemv_q4_f32 } from "./gemv_q4";
export { q4_quantize_i16x2, gemv_q4_i16x2 } from "./gemv_q4_i16x2";
export { q4_quantize_digits, q4_quantize_digits_t, gemv_q4_i8x3, gemm_q4_i8x3 } from "./gemv_q4_i8";
export { layer_norm, rms_norm } from "./norm";
export { add, add_rows, scale_rows, gelu, swiglu } from "./elementwise";
export { rope } from "./rope";
export { attn_pack, attention, attn_decode } from "./attention";
export { peak_f32, peak_dot_i16, peak_dot_i8, stream_read, peak_f32_t, peak_dot_i16_t, peak_dot_i8_t, stream_read_t, stream_read_multi_t } from "./peak";
