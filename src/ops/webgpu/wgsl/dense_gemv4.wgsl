// Dense linear, M = 1 (decode), rows of W a whole number of 16-byte words (K·esize % 16 == 0;
// linear.ts picks dense_gemv otherwise): y[n0 + j] = bias[n0 + j] + Σ_k x[k] · W[j, k].
// Each load is one vec4<u32>: 4 f32 weights or 8 f16/bf16 weights (element 2i in the low half,
// as common.wgsl widen()). A workgroup is 8 groups of 32 lanes; a group owns R rows, its lanes
// stride the row (512 contiguous bytes per step) and issue the R rows' loads before using them.
// x is staged through workgroup memory XT values at a time and read as vec4, shared by the
// workgroup's 8·R rows. Why: one 32-bit load per element, 8 rows per workgroup, read Qwen's
// fp16 lm_head (151936 × 4096) at 770 GB/s on an H200, 18 % of 4239 GB/s (docs/webgpu-h200.md).
// `glu` = 1: x holds [a | b] (2K values) and the input is swiglu_gate(a[k], b[k]), computed while
// x is staged (swigluMatmul).
struct Params { n: u32, k: u32, nc: u32, n0: u32, x_off: u32, o_off: u32, dtype: u32, has_bias: u32, glu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

const R = 4u;               // rows per group of 32 lanes (linear.ts DENSE_GEMV4_ROWS = 8·R)
const XT = 2048u;           // x values per staged tile (8 KiB)
var<workgroup> xs: array<vec4<f32>, XT / 4u>;
var<workgroup> part: array<f32, 8u * R * 32u>;

// The 8 (16-bit) or 4 (f32) weights of one word, as two vec4 (the second unused for f32).
fn dot_word(wv: vec4<u32>, e: u32) -> f32 {
  // e: index of the word's first element within the staged tile, a multiple of 4 (f32) or 8.
  if (p.dtype == 0u) {
    return dot(bitcast<vec4<f32>>(wv), xs[e / 4u]);
  }
  var lo: vec4<f32>;
  var hi: vec4<f32>;
  if (p.dtype == 1u) {
    lo = vec4<f32>(f16_to_f32(wv.x & 0xffffu), f16_to_f32(wv.x >> 16u), f16_to_f32(wv.y & 0xffffu), f16_to_f32(wv.y >> 16u));
    hi = vec4<f32>(f16_to_f32(wv.z & 0xffffu), f16_to_f32(wv.z >> 16u), f16_to_f32(wv.w & 0xffffu), f16_to_f32(wv.w >> 16u));
  } else {
    lo = vec4<f32>(bf16_to_f32(wv.x & 0xffffu), bf16_to_f32(wv.x >> 16u), bf16_to_f32(wv.y & 0xffffu), bf16_to_f32(wv.y >> 16u));
    hi = vec4<f32>(bf16_to_f32(wv.z & 0xffffu), bf16_to_f32(wv.z >> 16u), bf16_to_f32(wv.w & 0xffffu), bf16_to_f32(wv.w >> 16u));
  }
  return dot(lo, xs[e / 4u]) + dot(hi, xs[e / 4u + 1u]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let grp = l / 32u;
  let lane = l % 32u;
  let j0 = (wid.x + wid.y * nwg.x) * (8u * R) + grp * R;
  let per = select(8u, 4u, p.dtype == 0u);  // elements per word
  let kw = p.k / per;                        // words per row
  var acc: array<f32, R>;
  for (var r = 0u; r < R; r++) { acc[r] = 0.0; }
  for (var k0 = 0u; k0 < p.k; k0 += XT) {
    let nk = min(XT, p.k - k0);
    workgroupBarrier(); // the previous tile of x is no longer read
    for (var e = l; e < XT; e += 256u) {
      var xv = 0.0;
      if (e < nk) {
        xv = x[p.x_off + k0 + e];
        if (p.glu == 1u) { xv = swiglu_gate(xv, x[p.x_off + p.k + k0 + e]); }
      }
      xs[e / 4u][e % 4u] = xv;
    }
    workgroupBarrier();
    let w0 = k0 / per;
    for (var c = lane; c < nk / per; c += 32u) {
      var wv: array<vec4<u32>, R>;
      for (var r = 0u; r < R; r++) {
        let j = min(j0 + r, p.nc - 1u);
        wv[r] = w[j * kw + w0 + c];
      }
      for (var r = 0u; r < R; r++) { acc[r] += dot_word(wv[r], c * per); }
    }
  }
  for (var r = 0u; r < R; r++) { part[(grp * R + r) * 32u + lane] = acc[r]; }
  workgroupBarrier();
  if (l < 8u * R) {
    let j = (wid.x + wid.y * nwg.x) * (8u * R) + l;
    if (j < p.nc) {
      // In a fixed order: results do not depend on scheduling.
      var v = 0.0;
      for (var c = 0u; c < 32u; c++) { v += part[l * 32u + c]; }
      if (p.has_bias == 1u) { v += bias[p.n0 + j]; }
      o[p.o_off + p.n0 + j] = v;
    }
  }
}
