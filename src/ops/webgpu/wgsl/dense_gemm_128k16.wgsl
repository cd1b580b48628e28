// Dense linear, M > 1: dense_gemm_128.wgsl (128 × 128 outputs per workgroup, 16 × 16 threads of
// 8 × 8 accumulators, two workgroup buffers) with K tiles of 16 instead of 8: half the barriers
// per K, and 16 global loads in flight per thread while a tile's 1024 multiply-adds run.
// Same parameters, bindings and summation order as dense_gemm.wgsl. Workgroup memory
// 2 × 2 × 16 × 128 × 4 B = 32 KiB, twice WebGPU's default limit: linear.ts uses it only where
// the device offers that much (DENSE_GEMM_KERNELS' sharedBytes).
struct Params { m: u32, n: u32, k: u32, nc: u32, n0: u32, x_off: u32, o_off: u32, dtype: u32, has_bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

const TM = 128u;
const TN = 128u;
const KT = 16u;
// [buffer][kk][TM / 4] vec4 of 4 consecutive rows (columns for ws): element (b · KT + kk) · 32 + r / 4.
const BUF = 512u; // KT · TM / 4 vec4 per buffer
var<workgroup> xs: array<vec4f, 1024>;
var<workgroup> ws: array<vec4f, 1024>;

fn load_x(m: u32, k: u32) -> f32 {
  if (m < p.m && k < p.k) { return x[p.x_off + m * p.k + k]; }
  return 0.0;
}

fn load_w(j: u32, k: u32) -> f32 {
  if (j < p.nc && k < p.k) {
    let e = j * p.k + k;
    return widen(w[word_index(e, p.dtype)], e, p.dtype);
  }
  return 0.0;
}

// Row m, columns j.. j + 3 of the output (each bounds-checked), bias added after the sum as in dense_gemm.
fn put(m: u32, j: u32, v: vec4f) {
  if (m >= p.m) { return; }
  for (var c = 0u; c < 4u; c++) {
    let jj = j + c;
    if (jj < p.nc) {
      var s = v[c];
      if (p.has_bias == 1u) { s += bias[p.n0 + jj]; }
      o[p.o_off + m * p.n + p.n0 + jj] = s;
    }
  }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) l: u32) {
  let m0 = wid.y * TM;
  let j0 = wid.x * TN;
  let tx = lid.x;
  let ty = lid.y;
  // Staging: thread l fetches row (column) r of the tile, k = kq .. kq + 7 of each K tile. The 32
  // threads of a warp share kq and take consecutive r: their stores hit 32 different banks.
  let r = l % TM;
  let kq = (l / TM) * 8u;
  let sidx = kq * (TM / 4u) + r / 4u;
  let scomp = r % 4u;
  var sx: array<f32, 8>;
  var sw: array<f32, 8>;
  for (var i = 0u; i < 8u; i++) {
    sx[i] = load_x(m0 + r, kq + i);
    sw[i] = load_w(j0 + r, kq + i);
  }
  for (var i = 0u; i < 8u; i++) {
    xs[sidx + i * (TM / 4u)][scomp] = sx[i];
    ws[sidx + i * (TN / 4u)][scomp] = sw[i];
  }
  workgroupBarrier();

  var c00 = vec4f(); var c01 = vec4f(); var c10 = vec4f(); var c11 = vec4f();
  var c20 = vec4f(); var c21 = vec4f(); var c30 = vec4f(); var c31 = vec4f();
  var c40 = vec4f(); var c41 = vec4f(); var c50 = vec4f(); var c51 = vec4f();
  var c60 = vec4f(); var c61 = vec4f(); var c70 = vec4f(); var c71 = vec4f();
  let nt = (p.k + KT - 1u) / KT;
  for (var t = 0u; t < nt; t++) {
    let cur = (t & 1u) * BUF;
    let more = t + 1u < nt;
    if (more) {
      let k1 = (t + 1u) * KT + kq;
      for (var i = 0u; i < 8u; i++) {
        sx[i] = load_x(m0 + r, k1 + i);
        sw[i] = load_w(j0 + r, k1 + i);
      }
    }
    for (var kk = 0u; kk < KT; kk++) {
      let base = cur + kk * (TM / 4u);
      let a0 = xs[base + ty];
      let a1 = xs[base + 16u + ty];
      let b0 = ws[base + tx];
      let b1 = ws[base + 16u + tx];
      c00 += a0.x * b0; c01 += a0.x * b1;
      c10 += a0.y * b0; c11 += a0.y * b1;
      c20 += a0.z * b0; c21 += a0.z * b1;
      c30 += a0.w * b0; c31 += a0.w * b1;
      c40 += a1.x * b0; c41 += a1.x * b1;
      c50 += a1.y * b0; c51 += a1.y * b1;
      c60 += a1.z * b0; c61 += a1.z * b1;
      c70 += a1.w * b0; c71 += a1.w * b1;
    }
    if (more) {
      // The other buffer: its last readers finished tile t − 1 before the previous barrier.
      let nxt = BUF - cur;
      for (var i = 0u; i < 8u; i++) {
        xs[nxt + sidx + i * (TM / 4u)][scomp] = sx[i];
        ws[nxt + sidx + i * (TN / 4u)][scomp] = sw[i];
      }
    }
    workgroupBarrier();
  }
  let ma = m0 + 4u * ty;
  let mb = m0 + 64u + 4u * ty;
  let ja = j0 + 4u * tx;
  let jb = j0 + 64u + 4u * tx;
  put(ma, ja, c00); put(ma, jb, c01);
  put(ma + 1u, ja, c10); put(ma + 1u, jb, c11);
  put(ma + 2u, ja, c20); put(ma + 2u, jb, c21);
  put(ma + 3u, ja, c30); put(ma + 3u, jb, c31);
  put(mb, ja, c40); put(mb, jb, c41);
  put(mb + 1u, ja, c50); put(mb + 1u, jb, c51);
  put(mb + 2u, ja, c60); put(mb + 2u, jb, c61);
  put(mb + 3u, ja, c70); put(mb + 3u, jb, c71);
}
