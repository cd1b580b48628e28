// Shared by every shader (prepended by device.ts's loadShaders).

// An f16 bit pattern widened to f32 with integer operations, exact for every pattern (subnormals,
// ±0, ±Inf, NaN): unpack2x16float may flush f16 subnormals, and the f32 oracle keeps them
// (src/io/fp16.ts).
fn f16_to_f32(h: u32) -> f32 {
  let s = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0x1fu) {
    return bitcast<f32>(s | 0x7f800000u | (m << 13u));
  }
  if (e != 0u) {
    return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
  }
  let v = f32(m) * 5.9604644775390625e-8; // m · 2^-24: a normal f32, exact
  return select(v, -v, s != 0u);
}

fn bf16_to_f32(h: u32) -> f32 {
  return bitcast<f32>(h << 16u);
}

// Element e of a weight stored as 32-bit words: dtype 0 = f32 (one word each), 1 = f16 and
// 2 = bf16 (two per word, element 2i in the low half, as little-endian Uint16Array bytes lay out).
fn widen(word: u32, e: u32, dtype: u32) -> f32 {
  if (dtype == 0u) {
    return bitcast<f32>(word);
  }
  let h = (word >> ((e & 1u) * 16u)) & 0xffffu;
  if (dtype == 1u) {
    return f16_to_f32(h);
  }
  return bf16_to_f32(h);
}

fn word_index(e: u32, dtype: u32) -> u32 {
  return select(e >> 1u, e, dtype == 0u);
}

// Linear invocation index of a 1-D problem laid over a 2-D grid of `wg`-wide workgroups
// (context.ts's grid(): x stays within maxComputeWorkgroupsPerDimension).
fn flat_index(gid: vec3u, nwg: vec3u, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}

// SwiGLU's gate a · silu(b), silu(b) = b / (1 + e^(−b)) (upstream Qwen-VL-Chat modeling_qwen.py
// QWenMLP: a1 * F.silu(a2)). One function for swiglu.wgsl and the GEMVs that gate their staged
// input (gptq_gemv, dense_gemv4 with glu = 1), so the fused and separate paths compute the same
// expression. For b ≪ 0, e^(−b) overflows to +Inf and b/Inf = −0, the limit.
fn swiglu_gate(a: f32, b: f32) -> f32 {
  return a * (b / (1.0 + exp(-b)));
}
