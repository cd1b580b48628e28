// Products on the matrix units (Dawn's chromium_experimental_subgroup_matrix: Vulkan cooperative
// matrices, tensor cores on NVIDIA), from operands that split_f16.wgsl made into f16 hi/lo halves
// with a power-of-two scale per row. For each batch b (workgroup z):
//   out[b][m][n0 + j] = (Σ_k A[b][m][k] · B[b][j][k]) · alpha + bias[n0 + j],   m < M, j < NC,
// at element o_off + b·obs + m·ldo + n0 + j of `o`. A is always split: A = (Ah + Al) · rsA[m].
// B is either a linear's f16 weight chunk [NC, K] (b_split = 0: exact in f16, so 2 products,
// Ah·B + Al·B) or split as well (b_split = 1, attention's k and vᵀ: B = (Bh + Bl) · rsB[j], and 3
// products, Ah·Bh + Ah·Bl + Al·Bh; Al·Bl is below 2^-44 of the sum). The f16 products are exact in
// the f32 accumulators, so the error is the split's 2^-22 per operand plus f32 summation (in the
// hardware's order, not k ascending: results differ from dense_gemm in the last bits).
//
// One workgroup is one subgroup (32 invocations; linear.ts and backend.ts use this kernel only
// where the subgroup size is fixed at 32 and the adapter offers the f16 → f32 16×16×16
// configuration), so every matrix operation runs in uniform control flow. It computes
// TM × TN = 32 × 64 outputs as 2 × 4 result matrices of 16 × 16, loading its operands straight
// from storage (the caches serve the reuse; each 16 × 16 f16 fragment is 512 bytes). Per k step
// of 16: 2 × 2 left fragments (hi, lo), 4 right fragments (8 with B split), 16 multiply-
// accumulates (24). The fragments are named variables, not arrays: an array of matrices indexed
// in a loop may be kept in local memory. Loads and stores use the majorness template form
// (`subgroupMatrixLoad<T, row_major>(p, offset, stride)`): Dawn deprecates the bool-argument
// form, which ran equally fast on the H200 (bench/results/h200-webgpu-gemm-mma*.json).
//
// Accuracy: the accumulators restart every KB = 256 values of k and each block's sums are added
// into f32 registers (one per output of the lane, through workgroup memory). With one accumulator
// over all of K = 8192 an H200 gave 1.8e-5 rel L2 from dense_gemm (dense_gemm itself is within
// 1.5e-6 of float64): the matrix units' own accumulation loses more than f32 adds do.
// Requires K % 16 == 0 (split_f16 pads), MP % 32 == 0 and, for B, whole 64-row tiles (NP % 64 == 0
// when split; a weight chunk's NC % 64 == 0); the callers check.
enable f16;
enable chromium_experimental_subgroup_matrix;

// Params, bindings 0/2/4/5/6, A/B/C, S, KB, PER_LANE and write_out: mma_common.wgsl.
@group(0) @binding(1) var<storage, read> hl: array<f16>;
@group(0) @binding(3) var<storage, read> w: array<f16>;

const TM = 32u; // FM · S
const TN = 64u; // FN · S
var<workgroup> tile: array<f32, 2048>; // TM · TN

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let m0 = wid.y * TM;
  let j0 = wid.x * TN;
  let bz = wid.z;
  let a_base = bz * 2u * p.mp * p.k;
  let a_lo = p.mp * p.k;
  // A split B: batch bz's hi at bz·2·NP·K, lo NP·K further; a weight chunk: batch 0, no lo.
  let b_base = bz * 2u * p.np * p.k;
  let b_lo = p.np * p.k;
  // Lane l owns outputs e = l + 32·q of the tile (row e / TN, column e % TN).
  var part: array<f32, PER_LANE>;
  for (var kb = 0u; kb < p.k; kb += KB) {
    var c00 = C(); var c01 = C(); var c02 = C(); var c03 = C();
    var c10 = C(); var c11 = C(); var c12 = C(); var c13 = C();
    let kend = min(kb + KB, p.k);
    for (var k0 = kb; k0 < kend; k0 += S) {
      let a0 = a_base + m0 * p.k + k0;
      let ah0 = subgroupMatrixLoad<A, row_major>(&hl, a0, p.k);
      let al0 = subgroupMatrixLoad<A, row_major>(&hl, a0 + a_lo, p.k);
      let ah1 = subgroupMatrixLoad<A, row_major>(&hl, a0 + S * p.k, p.k);
      let al1 = subgroupMatrixLoad<A, row_major>(&hl, a0 + a_lo + S * p.k, p.k);
      // B is [rows j, K] row-major: the K × 16 right operand is column-major with stride K.
      let b0 = b_base + j0 * p.k + k0;
      let w0 = subgroupMatrixLoad<B, col_major>(&w, b0, p.k);
      c00 = subgroupMatrixMultiplyAccumulate(al0, w0, c00);
      c00 = subgroupMatrixMultiplyAccumulate(ah0, w0, c00);
      c10 = subgroupMatrixMultiplyAccumulate(al1, w0, c10);
      c10 = subgroupMatrixMultiplyAccumulate(ah1, w0, c10);
      let w1 = subgroupMatrixLoad<B, col_major>(&w, b0 + S * p.k, p.k);
      c01 = subgroupMatrixMultiplyAccumulate(al0, w1, c01);
      c01 = subgroupMatrixMultiplyAccumulate(ah0, w1, c01);
      c11 = subgroupMatrixMultiplyAccumulate(al1, w1, c11);
      c11 = subgroupMatrixMultiplyAccumulate(ah1, w1, c11);
      let w2 = subgroupMatrixLoad<B, col_major>(&w, b0 + 2u * S * p.k, p.k);
      c02 = subgroupMatrixMultiplyAccumulate(al0, w2, c02);
      c02 = subgroupMatrixMultiplyAccumulate(ah0, w2, c02);
      c12 = subgroupMatrixMultiplyAccumulate(al1, w2, c12);
      c12 = subgroupMatrixMultiplyAccumulate(ah1, w2, c12);
      let w3 = subgroupMatrixLoad<B, col_major>(&w, b0 + 3u * S * p.k, p.k);
      c03 = subgroupMatrixMultiplyAccumulate(al0, w3, c03);
      c03 = subgroupMatrixMultiplyAccumulate(ah0, w3, c03);
      c13 = subgroupMatrixMultiplyAccumulate(al1, w3, c13);
      c13 = subgroupMatrixMultiplyAccumulate(ah1, w3, c13);
      if (p.b_split == 1u) {
        let v0 = subgroupMatrixLoad<B, col_major>(&w, b0 + b_lo, p.k);
        c00 = subgroupMatrixMultiplyAccumulate(ah0, v0, c00);
        c10 = subgroupMatrixMultiplyAccumulate(ah1, v0, c10);
        let v1 = subgroupMatrixLoad<B, col_major>(&w, b0 + b_lo + S * p.k, p.k);
        c01 = subgroupMatrixMultiplyAccumulate(ah0, v1, c01);
        c11 = subgroupMatrixMultiplyAccumulate(ah1, v1, c11);
        let v2 = subgroupMatrixLoad<B, col_major>(&w, b0 + b_lo + 2u * S * p.k, p.k);
        c02 = subgroupMatrixMultiplyAccumulate(ah0, v2, c02);
        c12 = subgroupMatrixMultiplyAccumulate(ah1, v2, c12);
        let v3 = subgroupMatrixLoad<B, col_major>(&w, b0 + b_lo + 3u * S * p.k, p.k);
        c03 = subgroupMatrixMultiplyAccumulate(ah0, v3, c03);
        c13 = subgroupMatrixMultiplyAccumulate(ah1, v3, c13);
      }
    }
    subgroupMatrixStore<row_major>(&tile, 0u, c00, TN);
    subgroupMatrixStore<row_major>(&tile, S, c01, TN);
    subgroupMatrixStore<row_major>(&tile, 2u * S, c02, TN);
    subgroupMatrixStore<row_major>(&tile, 3u * S, c03, TN);
    subgroupMatrixStore<row_major>(&tile, S * TN, c10, TN);
    subgroupMatrixStore<row_major>(&tile, S * TN + S, c11, TN);
    subgroupMatrixStore<row_major>(&tile, S * TN + 2u * S, c12, TN);
    subgroupMatrixStore<row_major>(&tile, S * TN + 3u * S, c13, TN);
    workgroupBarrier();
    for (var q = 0u; q < PER_LANE; q++) { part[q] += tile[l + 32u * q]; }
    // The next block's stores must wait until every lane has read this one.
    workgroupBarrier();
  }
  for (var q = 0u; q < PER_LANE; q++) {
    let e = l + 32u * q;
    write_out(part[q], bz, m0 + e / TN, j0 + e % TN);
  }
}
