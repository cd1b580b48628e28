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
// Why a second kernel: dense_gemm_mma.wgsl (one subgroup of 32 per workgroup, a 32 × 64 tile,
// every fragment loaded straight from storage) ran at 16–23 TFLOP/s on an H200, 3–5% of its
// tensor rate (docs/webgpu-h200.md), every subgroup fetching all of its fragments from storage
// itself, one 16 × 16 f16 fragment per load. Here a workgroup is 4 subgroups of 32 (128
// invocations; linear.ts and backend.ts use the matrix units only where the subgroup size is
// fixed at 32 and the adapter offers the f16 → f32 16×16×16 configuration) computing
// TM × TN = 64 × 128 outputs; subgroup s = l / 32 owns the 32 × 64 quarter (s / 2, s % 2) as
// 2 × 4 result matrices of 16 × 16, so each staged A row serves 2 subgroups and each B row 2.
// Per k step of 16 the 128 invocations copy the step's slices of A (hi, lo: 64 rows) and B (128
// rows; hi and lo when split) from storage into workgroup memory with 8-byte loads, the next
// step's loads issued before this step's products; each subgroup then loads its fragments from
// there: 2 × 2 left (hi, lo), 4 right (8 with B split), 16 multiply-accumulates (24).
// Workgroup memory: 4 KiB of A slices, 8 KiB of B slices and 32 KiB of block sums, 44 KiB
// (45056 bytes; mma.ts's MMA_KERNELS["4sg"].sharedBytes): the device must allow that much
// (maxComputeWorkgroupStorageSize; WebGPU's default is 16 KiB), else device.ts falls back to
// dense_gemm_mma. Offsets that depend on the subgroup are uniform within it, not within the
// workgroup, hence the diagnostic below (every matrix operation is still in workgroup-uniform
// control flow). The fragments are named variables, not arrays: an array of matrices indexed in
// a loop may be kept in local memory. Loads and stores use the majorness template form
// (`subgroupMatrixLoad<T, row_major>(p, offset, stride)`): Dawn deprecates the bool-argument
// form, which ran equally fast on the H200 (bench/results/h200-webgpu-gemm-mma*.json).
//
// Accuracy: the accumulators restart every KB = 256 values of k and each block's sums are added
// into f32 registers (one per output of the lane, through workgroup memory). With one accumulator
// over all of K = 8192 an H200 gave 1.8e-5 rel L2 from dense_gemm (dense_gemm itself is within
// 1.5e-6 of float64): the matrix units' own accumulation loses more than f32 adds do.
// Requires K % 16 == 0 (split_f16 pads), MP % 64 == 0 and, for B, whole 128-row tiles (NP % 128 == 0
// when split; a weight chunk's NC % 128 == 0); the callers check.
enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);

// Params, bindings 0/2/4/5/6, A/B/C, S, KB, PER_LANE and write_out: mma_common.wgsl.
@group(0) @binding(1) var<storage, read> hl: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f16>>;

const TM = 64u;
const TN = 128u;
// One k step's slices, [half][row][16 k]: A hi/lo 2 × 64 rows, B hi/lo 2 × 128 rows.
var<workgroup> as_: array<f16, 2048>;
var<workgroup> bs_: array<f16, 4096>;
var<workgroup> sums: array<f32, 8192>; // per subgroup, its 32 × 64 block sums

struct Staged { a: array<vec4<f16>, 4>, b: array<vec4<f16>, 4>, bl: array<vec4<f16>, 4> }

// Invocation l's share of k step k0: 4 vec4 of A (hi or lo), 4 of B (hi), 4 of B's lo if split.
// Vec4 index v of a slice: row v / 4, k quad v % 4.
fn fetch(l: u32, k0: u32, a_base: u32, b_base: u32, m0: u32, j0: u32) -> Staged {
  var st: Staged;
  let kq = p.k / 4u; // vec4 per row
  for (var i = 0u; i < 4u; i++) {
    let v = l + 128u * i; // 0..511: half v / 256 of A
    let half = v / 256u;
    let r = (v % 256u) / 4u;
    st.a[i] = hl[(a_base + half * p.mp * p.k) / 4u + (m0 + r) * kq + k0 / 4u + v % 4u];
    let rb = v / 4u; // 0..127
    st.b[i] = w[b_base / 4u + (j0 + rb) * kq + k0 / 4u + v % 4u];
    if (p.b_split == 1u) { st.bl[i] = w[(b_base + p.np * p.k) / 4u + (j0 + rb) * kq + k0 / 4u + v % 4u]; }
  }
  return st;
}

// B's lo half is staged only when B is split (attention): a linear's f16 weight has none, and its
// 16 scalar stores per invocation per step would be a third of the staging work.
fn stage(l: u32, st: Staged) {
  for (var i = 0u; i < 4u; i++) {
    let v = l + 128u * i;
    for (var c = 0u; c < 4u; c++) {
      as_[v * 4u + c] = st.a[i][c]; // v·4 = half·1024 + row·16 + quad·4
      bs_[v * 4u + c] = st.b[i][c];
    }
    if (p.b_split == 1u) {
      for (var c = 0u; c < 4u; c++) { bs_[2048u + v * 4u + c] = st.bl[i][c]; }
    }
  }
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let m0 = wid.y * TM;
  let j0 = wid.x * TN;
  let bz = wid.z;
  let a_base = bz * 2u * p.mp * p.k;
  // A split B: batch bz's hi at bz·2·NP·K, lo NP·K further; a weight chunk: batch 0, no lo.
  let b_base = bz * 2u * p.np * p.k;
  let sg = l / 32u;
  let lane = l % 32u;
  let ra = (sg / 2u) * 32u; // the subgroup's rows within the tile
  let rb = (sg % 2u) * 64u; // and columns
  var part: array<f32, PER_LANE>;
  var st = fetch(l, 0u, a_base, b_base, m0, j0);
  for (var kb = 0u; kb < p.k; kb += KB) {
    var c00 = C(); var c01 = C(); var c02 = C(); var c03 = C();
    var c10 = C(); var c11 = C(); var c12 = C(); var c13 = C();
    let kend = min(kb + KB, p.k);
    for (var k0 = kb; k0 < kend; k0 += S) {
      // The previous step's readers are done (barrier at the end of the step) before these stores.
      stage(l, st);
      workgroupBarrier();
      if (k0 + S < p.k) { st = fetch(l, k0 + S, a_base, b_base, m0, j0); }
      let ah0 = subgroupMatrixLoad<A, row_major>(&as_, ra * S, S);
      let al0 = subgroupMatrixLoad<A, row_major>(&as_, 1024u + ra * S, S);
      let ah1 = subgroupMatrixLoad<A, row_major>(&as_, (ra + S) * S, S);
      let al1 = subgroupMatrixLoad<A, row_major>(&as_, 1024u + (ra + S) * S, S);
      // B's slice is [row j][16 k]: the 16 × 16 right operand is column-major with stride 16.
      let w0 = subgroupMatrixLoad<B, col_major>(&bs_, rb * S, S);
      c00 = subgroupMatrixMultiplyAccumulate(al0, w0, c00);
      c00 = subgroupMatrixMultiplyAccumulate(ah0, w0, c00);
      c10 = subgroupMatrixMultiplyAccumulate(al1, w0, c10);
      c10 = subgroupMatrixMultiplyAccumulate(ah1, w0, c10);
      let w1 = subgroupMatrixLoad<B, col_major>(&bs_, (rb + S) * S, S);
      c01 = subgroupMatrixMultiplyAccumulate(al0, w1, c01);
      c01 = subgroupMatrixMultiplyAccumulate(ah0, w1, c01);
      c11 = subgroupMatrixMultiplyAccumulate(al1, w1, c11);
      c11 = subgroupMatrixMultiplyAccumulate(ah1, w1, c11);
      let w2 = subgroupMatrixLoad<B, col_major>(&bs_, (rb + 2u * S) * S, S);
      c02 = subgroupMatrixMultiplyAccumulate(al0, w2, c02);
      c02 = subgroupMatrixMultiplyAccumulate(ah0, w2, c02);
      c12 = subgroupMatrixMultiplyAccumulate(al1, w2, c12);
      c12 = subgroupMatrixMultiplyAccumulate(ah1, w2, c12);
      let w3 = subgroupMatrixLoad<B, col_major>(&bs_, (rb + 3u * S) * S, S);
      c03 = subgroupMatrixMultiplyAccumulate(al0, w3, c03);
      c03 = subgroupMatrixMultiplyAccumulate(ah0, w3, c03);
      c13 = subgroupMatrixMultiplyAccumulate(al1, w3, c13);
      c13 = subgroupMatrixMultiplyAccumulate(ah1, w3, c13);
      if (p.b_split == 1u) {
        let v0 = subgroupMatrixLoad<B, col_major>(&bs_, 2048u + rb * S, S);
        c00 = subgroupMatrixMultiplyAccumulate(ah0, v0, c00);
        c10 = subgroupMatrixMultiplyAccumulate(ah1, v0, c10);
        let v1 = subgroupMatrixLoad<B, col_major>(&bs_, 2048u + (rb + S) * S, S);
        c01 = subgroupMatrixMultiplyAccumulate(ah0, v1, c01);
        c11 = subgroupMatrixMultiplyAccumulate(ah1, v1, c11);
        let v2 = subgroupMatrixLoad<B, col_major>(&bs_, 2048u + (rb + 2u * S) * S, S);
        c02 = subgroupMatrixMultiplyAccumulate(ah0, v2, c02);
        c12 = subgroupMatrixMultiplyAccumulate(ah1, v2, c12);
        let v3 = subgroupMatrixLoad<B, col_major>(&bs_, 2048u + (rb + 3u * S) * S, S);
        c03 = subgroupMatrixMultiplyAccumulate(ah0, v3, c03);
        c13 = subgroupMatrixMultiplyAccumulate(ah1, v3, c13);
      }
      workgroupBarrier();
    }
    let sb = sg * 2048u;
    subgroupMatrixStore<row_major>(&sums, sb, c00, 64u);
    subgroupMatrixStore<row_major>(&sums, sb + S, c01, 64u);
    subgroupMatrixStore<row_major>(&sums, sb + 2u * S, c02, 64u);
    subgroupMatrixStore<row_major>(&sums, sb + 3u * S, c03, 64u);
    subgroupMatrixStore<row_major>(&sums, sb + S * 64u, c10, 64u);
    subgroupMatrixStore<row_major>(&sums, sb + S * 64u + S, c11, 64u);
    subgroupMatrixStore<row_major>(&sums, sb + S * 64u + 2u * S, c12, 64u);
    subgroupMatrixStore<row_major>(&sums, sb + S * 64u + 3u * S, c13, 64u);
    workgroupBarrier();
    for (var q = 0u; q < PER_LANE; q++) { part[q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
  }
  for (var q = 0u; q < PER_LANE; q++) {
    let e = lane + 32u * q;
    write_out(part[q], bz, m0 + ra + e / 64u, j0 + rb + e % 64u);
  }
}
