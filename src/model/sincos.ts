// The resampler's fixed 2-D sin-cos position table, as NumPy computes it (visual.py:40-85, after MAE's
// util/pos_embed.py).
//
// Upstream stores it as a non-trainable nn.Parameter (visual.py:113-115), so a checkpoint carries it
// (`transformer.visual.attn_pool.pos_embed`, fp16 in Qwen-VL-Chat) and loading overwrites the value
// computed in __init__. The tower therefore uses the checkpoint's table; this module recomputes it so
// a checkpoint without it still works and so the stored table can be checked against its definition.
//
// NumPy dtype flow (all float32, each op rounded once, which `Math.fround` of the f64 result gives):
//   omega = arange(D/4, float32); omega /= (D/2)/2.      → f32 division        (visual.py:75-76)
//   omega = 1. / 10000**omega                              → f32 power, f32 reciprocal (visual.py:77)
//   out   = einsum('m,d->md', pos, omega)                  → f32 products        (visual.py:80)
//   sin(out), cos(out)                                     → f32 results         (visual.py:82-83)
// NumPy's float32 power/sin/cos are within an ulp of the exact value; rounding the f64 result is the
// correctly rounded one, so an element may differ from NumPy's by one f32 ulp (~6e-8 relative), far
// below the fp16 rounding of the stored table.
//
// Layout (visual.py:48-66): `np.meshgrid(grid_w, grid_h)` puts the column index w in grid[0] and the row
// index h in grid[1]; row m = h·G + w of the table is [emb1d(w) | emb1d(h)], each half being
// [sin(pos·omega) | cos(pos·omega)] over D/4 frequencies. (The upstream comment says grid[0] encodes h;
// with "w goes first" it is w.)

const f = Math.fround;

/** visual.py:69-85 `get_1d_sincos_pos_embed_from_grid` for one position, written into `out[at .. at+dim)`. */
function sincos1d(dim: number, omega: Float32Array, pos: number, out: Float32Array, at: number): void {
  const half = dim / 2;
  for (let d = 0; d < half; d++) {
    const angle = f(pos * omega[d]);
    out[at + d] = f(Math.sin(angle));
    out[at + half + d] = f(Math.cos(angle));
  }
}

/** The float32 frequencies 1 / 10000^(i / (dim/2)) of one 1-D half of width `dim` (visual.py:75-77). */
export function sincosOmega(dim: number): Float32Array {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0) {
    throw new Error(`sincosOmega: width must be a positive even integer, got ${dim}`);
  }
  const n = dim / 2;
  const omega = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const e = f(i / (dim / 2)); // omega /= embed_dim / 2.
    omega[i] = f(1 / f(Math.pow(10000, e))); // 1. / 10000**omega
  }
  return omega;
}

/**
 * visual.py:40-55 `get_2d_sincos_pos_embed(embedDim, gridSize)` without a cls token:
 * a [gridSize², embedDim] float32 table, row-major.
 */
export function sincosPosEmbed2d(embedDim: number, gridSize: number): Float32Array {
  if (!Number.isInteger(embedDim) || embedDim <= 0 || embedDim % 4 !== 0) {
    // visual.py:60 and :74 assert evenness of D and of D/2.
    throw new Error(`sincosPosEmbed2d: embedDim must be a positive multiple of 4, got ${embedDim}`);
  }
  if (!Number.isInteger(gridSize) || gridSize <= 0) {
    throw new Error(`sincosPosEmbed2d: gridSize must be a positive integer, got ${gridSize}`);
  }
  const half = embedDim / 2;
  const omega = sincosOmega(half);
  const out = new Float32Array(gridSize * gridSize * embedDim);
  for (let h = 0; h < gridSize; h++) {
    for (let w = 0; w < gridSize; w++) {
      const row = (h * gridSize + w) * embedDim;
      sincos1d(half, omega, w, out, row); // grid[0]: the column index
      sincos1d(half, omega, h, out, row + half); // grid[1]: the row index
    }
  }
  return out;
}
