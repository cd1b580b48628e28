// Products on the matrix units (Dawn's chromium_experimental_subgroup_matrix: Vulkan cooperative
// matrices, tensor cores on NVIDIA), from operands that split_f16.wgsl made into f16 hi/lo halves
// with a power-of-two scale per row; the operands, products and accuracy scheme are
// dense_gemm_mma.wgsl's (read its header): out[b][m][n0 + j] = (Σ_k A·B)·alpha + bias, A split,
// B a linear's f16 weight chunk (2 products) or split as well (attention's k and vᵀ, 3 products).
//
// Why a second kernel: dense_gemm_mma (one subgroup per 32 × 64 tile, every fragment loaded
// from storage) reaches 16–23 TFLOP/s on an H200. Here a workgroup is 8 subgroups of 32 (256
// invocations; used only where the subgroup size is fixed at 32 and the adapter offers the
// f16 → f32 16×16×16 configuration) computing a 128 × 128 tile: subgroup s = l / 32 owns the
// 32 × 64 block (s / 2, s % 2) as 2 × 4 result matrices, so each staged A row serves 2 subgroups
// and each B row 4. (32 × 64 per subgroup is what the registers allow: 8 accumulators beside
// the 64 f32 block sums per lane.) Measured on the H200 (docs/webgpu-h200.md), each step was
// worth keeping:
//  - Operand slices staged in workgroup memory, 4 subgroups per 64 × 128 tile: ViT block
//    products per image 211 → 159 ms.
//  - Double-buffered slices: step t's products read buffer t % 2 while its invocations store
//    step t + 1's slices (loaded from storage before the products) into the other, then one
//    barrier, where a single buffer needs two per step (stores → barrier → products → barrier):
//    159 → 150 ms.
//  - Rows of LD = 24 f16 (48 bytes) instead of 16: with 32-byte rows, rows r and r + 4 of a
//    fragment start at the same offset modulo the 128 bytes that workgroup memory's banks span;
//    48·r mod 128 is distinct for r = 0..7. Rows stay 16-byte aligned. 150 → 142 ms.
//  - 8 subgroups per 128 × 128 tile instead of 4 per 64 × 128: a k step stages 48 f16 per 2
//    products instead of 64 (98 ms), and with 24-f16 rows 92 ms.
// B's lo half (b_split = 1) is not staged: its fragments are loaded straight from storage through
// binding 7, the same buffer as binding 3 viewed as f16 scalars (subgroupMatrixLoad takes an
// array of the matrix's component type); staging it would not fit, and attention's products are
// a few percent of the image's.
// Workgroup memory: two buffers of A hi/lo (2 · 128 rows) and B (128 rows) slices of LD f16 per
// row, 36 KiB, and the block sums (every KB = 256 k) in eight rounds of one 16 × 16 result matrix
// per subgroup, 8 KiB: 45056 bytes (mma.ts's MMA_KERNELS["8sg"].sharedBytes); the device must
// allow that much (maxComputeWorkgroupStorageSize; WebGPU's default is 16 KiB), else device.ts
// falls back to dense_gemm_mma. Offsets that depend on the subgroup are uniform within it, not
// within the workgroup, hence the diagnostic below (every matrix operation is still in
// workgroup-uniform control flow). The fragments are named variables, not arrays: an array of
// matrices indexed in a loop may be kept in local memory.
// Requires K % 16 == 0 (split_f16 pads), MP % 128 == 0 and, for B, whole 128-row tiles
// (NP % 128 == 0 when split; a weight chunk's NC % 128 == 0); the callers check.
enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);

// Params, bindings 0/2/4/5/6, A/B/C, S, KB, PER_LANE and write_out: mma_common.wgsl.
@group(0) @binding(1) var<storage, read> hl: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(7) var<storage, read> wl: array<f16>;

const TM = 128u;
const TN = 128u;
const LD = 24u; // f16 per staged row: 16 k values and 8 of padding
const A_BUF = 2u * TM * LD; // one buffer's A slices: [half][row][LD]
const B_BUF = TN * LD; // one buffer's B slice: [row][LD]
var<workgroup> as_: array<f16, 2u * A_BUF>;
var<workgroup> bs_: array<f16, 2u * B_BUF>;
var<workgroup> sums: array<f32, 2048>; // per subgroup, one 16 × 16 result matrix of a round

struct Staged { a: array<vec4<f16>, 4>, b: array<vec4<f16>, 2> }

// Invocation l's share of k step k0: 4 vec4 of A (hi or lo) and 2 of B (hi).
// Vec4 index v of a slice: A half v / 512, row (v % 512) / 4; B row v / 4; k quad v % 4.
fn fetch(l: u32, k0: u32, a_base: u32, b_base: u32, m0: u32, j0: u32) -> Staged {
  var st: Staged;
  let kq = p.k / 4u; // vec4 per row
  for (var i = 0u; i < 4u; i++) {
    let v = l + 256u * i;
    st.a[i] = hl[(a_base + (v / 512u) * p.mp * p.k) / 4u + (m0 + (v % 512u) / 4u) * kq + k0 / 4u + v % 4u];
  }
  for (var i = 0u; i < 2u; i++) {
    let v = l + 256u * i;
    st.b[i] = w[b_base / 4u + (j0 + v / 4u) * kq + k0 / 4u + v % 4u];
  }
  return st;
}

fn stage(l: u32, buf: u32, st: Staged) {
  for (var i = 0u; i < 4u; i++) {
    let v = l + 256u * i;
    let ia = buf * A_BUF + (v / 512u) * TM * LD + ((v % 512u) / 4u) * LD + (v % 4u) * 4u;
    for (var c = 0u; c < 4u; c++) { as_[ia + c] = st.a[i][c]; }
  }
  for (var i = 0u; i < 2u; i++) {
    let v = l + 256u * i;
    let ib = buf * B_BUF + (v / 4u) * LD + (v % 4u) * 4u;
    for (var c = 0u; c < 4u; c++) { bs_[ib + c] = st.b[i][c]; }
  }
}

@compute @workgroup_size(256)
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
  let lo_base = b_base + p.np * p.k + (j0 + rb) * p.k; // B lo's first column of the subgroup
  var part: array<f32, PER_LANE>;
  stage(l, 0u, fetch(l, 0u, a_base, b_base, m0, j0));
  workgroupBarrier();
  var st: Staged;
  for (var kb = 0u; kb < p.k; kb += KB) {
    var c00 = C(); var c01 = C(); var c02 = C(); var c03 = C();
    var c10 = C(); var c11 = C(); var c12 = C(); var c13 = C();
    let kend = min(kb + KB, p.k);
    for (var k0 = kb; k0 < kend; k0 += S) {
      let cur = (k0 / S) % 2u;
      let more = k0 + S < p.k;
      if (more) { st = fetch(l, k0 + S, a_base, b_base, m0, j0); }
      let ao = cur * A_BUF + ra * LD;
      let bo = cur * B_BUF + rb * LD;
      let ah0 = subgroupMatrixLoad<A, row_major>(&as_, ao, LD);
      let al0 = subgroupMatrixLoad<A, row_major>(&as_, ao + TM * LD, LD);
      let ah1 = subgroupMatrixLoad<A, row_major>(&as_, ao + S * LD, LD);
      let al1 = subgroupMatrixLoad<A, row_major>(&as_, ao + TM * LD + S * LD, LD);
      // B's slice is [row j][k]: the 16 × 16 right operand is column-major with stride LD.
      let w0 = subgroupMatrixLoad<B, col_major>(&bs_, bo, LD);
      c00 = subgroupMatrixMultiplyAccumulate(al0, w0, c00);
      c00 = subgroupMatrixMultiplyAccumulate(ah0, w0, c00);
      c10 = subgroupMatrixMultiplyAccumulate(al1, w0, c10);
      c10 = subgroupMatrixMultiplyAccumulate(ah1, w0, c10);
      let w1 = subgroupMatrixLoad<B, col_major>(&bs_, bo + S * LD, LD);
      c01 = subgroupMatrixMultiplyAccumulate(al0, w1, c01);
      c01 = subgroupMatrixMultiplyAccumulate(ah0, w1, c01);
      c11 = subgroupMatrixMultiplyAccumulate(al1, w1, c11);
      c11 = subgroupMatrixMultiplyAccumulate(ah1, w1, c11);
      let w2 = subgroupMatrixLoad<B, col_major>(&bs_, bo + 2u * S * LD, LD);
      c02 = subgroupMatrixMultiplyAccumulate(al0, w2, c02);
      c02 = subgroupMatrixMultiplyAccumulate(ah0, w2, c02);
      c12 = subgroupMatrixMultiplyAccumulate(al1, w2, c12);
      c12 = subgroupMatrixMultiplyAccumulate(ah1, w2, c12);
      let w3 = subgroupMatrixLoad<B, col_major>(&bs_, bo + 3u * S * LD, LD);
      c03 = subgroupMatrixMultiplyAccumulate(al0, w3, c03);
      c03 = subgroupMatrixMultiplyAccumulate(ah0, w3, c03);
      c13 = subgroupMatrixMultiplyAccumulate(al1, w3, c13);
      c13 = subgroupMatrixMultiplyAccumulate(ah1, w3, c13);
      if (p.b_split == 1u) {
        // Column j of B lo is row j of the split operand: column-major with stride K.
        let v0 = subgroupMatrixLoad<B, col_major>(&wl, lo_base + k0, p.k);
        c00 = subgroupMatrixMultiplyAccumulate(ah0, v0, c00);
        c10 = subgroupMatrixMultiplyAccumulate(ah1, v0, c10);
        let v1 = subgroupMatrixLoad<B, col_major>(&wl, lo_base + S * p.k + k0, p.k);
        c01 = subgroupMatrixMultiplyAccumulate(ah0, v1, c01);
        c11 = subgroupMatrixMultiplyAccumulate(ah1, v1, c11);
        let v2 = subgroupMatrixLoad<B, col_major>(&wl, lo_base + 2u * S * p.k + k0, p.k);
        c02 = subgroupMatrixMultiplyAccumulate(ah0, v2, c02);
        c12 = subgroupMatrixMultiplyAccumulate(ah1, v2, c12);
        let v3 = subgroupMatrixLoad<B, col_major>(&wl, lo_base + 3u * S * p.k + k0, p.k);
        c03 = subgroupMatrixMultiplyAccumulate(ah0, v3, c03);
        c13 = subgroupMatrixMultiplyAccumulate(ah1, v3, c13);
      }
      // The other buffer was last read in the previous step, before the barrier that ended it.
      if (more) { stage(l, 1u - cur, st); }
      workgroupBarrier();
    }
    // Block sums in eight rounds of one result matrix. Each round's reads finish before the
    // next round's stores.
    let sb = sg * 256u;
    subgroupMatrixStore<row_major>(&sums, sb, c00, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[0u + q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&sums, sb, c01, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[8u + q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&sums, sb, c02, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[16u + q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&sums, sb, c03, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[24u + q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&sums, sb, c10, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[32u + q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&sums, sb, c11, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[40u + q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&sums, sb, c12, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[48u + q] += sums[sb + lane + 32u * q]; }
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&sums, sb, c13, S);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { part[56u + q] += sums[sb + lane + 32u * q]; }
    // The next block's first stores into `sums` come after at least one step's barrier.
  }
  for (var q = 0u; q < PER_LANE; q++) {
    // Round r = q / 8 holds result matrix (r / 4, r % 4) of the subgroup's 2 × 4.
    let r = q / 8u;
    let e = lane + 32u * (q % 8u);
    write_out(part[q], bz, m0 + ra + (r / 4u) * S + e / 16u, j0 + rb + (r % 4u) * S + e % 16u);
  }
}
