// What the two matrix-unit GEMMs (dense_gemm_mma.wgsl, dense_gemm_mma8.wgsl) share: their
// parameters, the bindings both declare alike, the subgroup-matrix configuration and the output
// step. device.ts's loadShaders puts this after common.wgsl in front of those two shaders only.
// No `enable` directives here: each shader's own (f16, chromium_experimental_subgroup_matrix)
// are hoisted before both. Bindings 1 (A's hi/lo halves) and 3 (B) are each shader's own: one
// reads f16 scalars, the other vec4<f16> (and binds B again as f16 scalars, binding 7).

struct Params {
  m: u32, nc: u32, k: u32, mp: u32, np: u32, n0: u32, o_off: u32, ldo: u32, obs: u32,
  has_bias: u32, b_split: u32, alpha: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> rsa: array<f32>;
@group(0) @binding(4) var<storage, read> rsb: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;

alias A = subgroup_matrix_left<f16, 16, 16>;
alias B = subgroup_matrix_right<f16, 16, 16>;
alias C = subgroup_matrix_result<f32, 16, 16>;
const S = 16u; // M = N = K of the subgroup matrix configuration
const KB = 256u; // k values per accumulator block (why: the header of dense_gemm_mma.wgsl)
const PER_LANE = 64u; // 32 × 64 outputs of one subgroup / 32 lanes

// Output (m, jj) of batch bz from its sum over k: the row scale of A (and of B when split),
// alpha, the bias; rows past M and columns past the chunk's NC are padding and not written.
fn write_out(sum: f32, bz: u32, m: u32, jj: u32) {
  if (m < p.m && jj < p.nc) {
    var s = sum * rsa[bz * p.mp + m];
    if (p.b_split == 1u) { s *= rsb[bz * p.np + jj]; }
    s *= p.alpha;
    if (p.has_bias == 1u) { s += bias[p.n0 + jj]; }
    o[p.o_off + bz * p.obs + m * p.ldo + p.n0 + jj] = s;
  }
}
