// Rotary position embedding with dynamic NTK scaling, and log-n attention scaling, exactly as
// Qwen's modeling_qwen.py computes them (RotaryEmbedding, modeling_qwen.py:1071-1111; the ntk_alpha
// choice in QWenModel.forward, modeling_qwen.py:635-650; logn_list, modeling_qwen.py:140-144).
//
// Why the care with float32: the reference builds its tables in torch float32, and at position ~500
// an angle `pos · inv_freq` of ~500 rad has a float32 spacing of 3e-5. Reproducing torch's roundings
// step by step (inv_freq, then pos·inv_freq, then cos/sin) lands on the very same angles instead of
// ones that differ by that much.
//
// API
//   ntkAlpha(kvSeqLen, trainedSeqLength): number           alpha for a prefill of kvSeqLen tokens
//   rotaryInvFreq(dim, base, alpha): Float32Array           [dim/2], float32 like torch
//   rotaryTables(invFreq, start, count): {cos, sin}          [count, dim] each, rotate-half layout
//   lognScale(position, trainedSeqLength): number           query multiplier at a 0-based position
//   lognScales(start, count, trainedSeqLength): Float32Array

const f32 = Math.fround;

/**
 * Dynamic-NTK alpha for a prefill over `kvSeqLen` tokens (modeling_qwen.py:639-646):
 *   context_value = log2(kv_seq_len / seq_length) + 1
 *   ntk_alpha     = max(2^ceil(context_value) − 1, 1)
 * Python's math.log(x, 2) is log(x)/log(2) in double, reproduced here (not Math.log2) so that the
 * ceil lands on the same side at lengths where the two differ by one ulp.
 * While decoding with a KV cache the reference keeps the prefill's alpha (modeling_qwen.py:648,
 * `self.rotary_emb._ntk_alpha_cached`), so this is called once per prompt.
 */
export function ntkAlpha(kvSeqLen: number, trainedSeqLength: number): number {
  if (!(kvSeqLen > 0) || !(trainedSeqLength > 0)) {
    throw new Error(`ntkAlpha: lengths must be positive (kvSeqLen=${kvSeqLen}, seq_length=${trainedSeqLength})`);
  }
  const contextValue = Math.log(kvSeqLen / trainedSeqLength) / Math.log(2) + 1;
  return Math.max(2 ** Math.ceil(contextValue) - 1, 1);
}

/**
 * inv_freq of RotaryEmbedding.update_rotary_pos_emb_cache (modeling_qwen.py:1084-1095):
 *   base     = self.base · ntk_alpha^(dim/(dim−2))            Python double
 *   inv_freq = 1 / (base ** (arange(0, dim, 2).float() / dim)) torch float32
 * torch evaluates `python_float ** float32_tensor` in float32: the base is rounded to float32,
 * each power is rounded to float32, and so is the reciprocal.
 */
export function rotaryInvFreq(dim: number, base: number, alpha: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 4 || dim % 2 !== 0) {
    throw new Error(`rotaryInvFreq: rotary dim must be an even integer ≥ 4, got ${dim}`);
  }
  const scaledBase = f32(base * alpha ** (dim / (dim - 2)));
  const inv = new Float32Array(dim / 2);
  for (let j = 0; j < dim / 2; j++) {
    const exponent = f32((2 * j) / dim);
    inv[j] = f32(1 / f32(scaledBase ** exponent));
  }
  return inv;
}

/**
 * cos/sin rows for positions start..start+count−1, each row [dim] laid out as torch's
 * `cat((freqs, freqs), -1)` (modeling_qwen.py:1100-1105): entry i uses inv_freq[i mod dim/2].
 * freqs = outer(seq.float(), inv_freq) is a float32 product; cos/sin are taken of that float32 angle.
 */
export function rotaryTables(
  invFreq: Float32Array,
  start: number,
  count: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const dim = 2 * half;
  const cos = new Float32Array(count * dim);
  const sin = new Float32Array(count * dim);
  for (let t = 0; t < count; t++) {
    const pos = start + t;
    for (let j = 0; j < half; j++) {
      const angle = f32(pos * invFreq[j]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * dim + j] = c;
      cos[t * dim + j + half] = c;
      sin[t * dim + j] = s;
      sin[t * dim + j + half] = s;
    }
  }
  return { cos, sin };
}

/**
 * Log-n query scale for the 0-based absolute position `position` (modeling_qwen.py:140-144 and
 * the slicing at :292-298): logn_list[i−1] = log_{seq_length}(i) for i > seq_length, else 1, stored
 * as a float32 tensor. Python's math.log(i, b) is log(i)/log(b) in double.
 */
export function lognScale(position: number, trainedSeqLength: number): number {
  const i = position + 1;
  return i > trainedSeqLength ? f32(Math.log(i) / Math.log(trainedSeqLength)) : 1;
}

/** lognScale for positions start..start+count−1. */
export function lognScales(start: number, count: number, trainedSeqLength: number): Float32Array {
  const out = new Float32Array(count);
  for (let t = 0; t < count; t++) out[t] = lognScale(start + t, trainedSeqLength);
  return out;
}
