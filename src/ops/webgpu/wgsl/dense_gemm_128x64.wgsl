// Dense linear, M > 1, in tiles of 128 rows × 64 output columns: y[m, n0 + j] = bias[n0 + j] +
// Σ_k x[m, k] · W[j, k] over one chunk of output rows j < nc of W (linear.ts). Same parameters,
// bindings and summation order as dense_gemm.wgsl; the staging scheme of dense_gemm_128.wgsl
// (two workgroup buffers of KT = 8 values of K, the next tile's global loads issued before the
// current tile's arithmetic) with half its columns: twice the workgroups for a given N (the ViT's
// N = 1664 makes 13 × 8 = 104 workgroups of 128 × 128, fewer than an H200's 132 multiprocessors,
// and 208 of these), at 3 vec4 workgroup-memory reads per 32 multiply-adds instead of 4 per 64.
//
// 16 × 16 threads, each holding 8 × 4 accumulators: rows 4·ty.. and 64 + 4·ty.., columns 4·tx...
// Workgroup memory 2 × 8 × (128 + 64) × 4 B = 12 KiB.
struct Params { m: u32, n: u32, k: u32, nc: u32, n0: u32, x_off: u32, o_off: u32, dtype: u32, has_bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

const TM = 128u;
const TN = 64u;
const KT = 8u;
const XBUF = 256u; // KT · TM / 4 vec4 per buffer of xs
const WBUF = 128u; // KT · TN / 4 vec4 per buffer of ws
var<workgroup> xs: array<vec4f, 512>;
var<workgroup> ws: array<vec4f, 256>;

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

// Row m, columns j .. j + 3 of the output (each bounds-checked), bias added after the sum as in dense_gemm.
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
  // Staging: x row rx, k = kx .. kx + 3; W row rw, k = kw, kw + 1 of each K tile. A warp's 32
  // threads share kx (kw) and take consecutive rows: their stores hit 32 different banks.
  let rx = l % TM;
  let kx = (l / TM) * 4u;
  let rw = l % TN;
  let kw = (l / TN) * 2u;
  let xi = kx * (TM / 4u) + rx / 4u;
  let wi = kw * (TN / 4u) + rw / 4u;
  var sx: vec4f;
  var sw: vec2f;
  for (var i = 0u; i < 4u; i++) { sx[i] = load_x(m0 + rx, kx + i); }
  for (var i = 0u; i < 2u; i++) { sw[i] = load_w(j0 + rw, kw + i); }
  for (var i = 0u; i < 4u; i++) { xs[xi + i * (TM / 4u)][rx % 4u] = sx[i]; }
  for (var i = 0u; i < 2u; i++) { ws[wi + i * (TN / 4u)][rw % 4u] = sw[i]; }
  workgroupBarrier();

  var c0 = vec4f(); var c1 = vec4f(); var c2 = vec4f(); var c3 = vec4f();
  var c4 = vec4f(); var c5 = vec4f(); var c6 = vec4f(); var c7 = vec4f();
  let nt = (p.k + KT - 1u) / KT;
  for (var t = 0u; t < nt; t++) {
    let t1 = t & 1u;
    let more = t + 1u < nt;
    if (more) {
      let k1 = (t + 1u) * KT;
      for (var i = 0u; i < 4u; i++) { sx[i] = load_x(m0 + rx, k1 + kx + i); }
      for (var i = 0u; i < 2u; i++) { sw[i] = load_w(j0 + rw, k1 + kw + i); }
    }
    for (var kk = 0u; kk < KT; kk++) {
      let xb = t1 * XBUF + kk * (TM / 4u);
      let wb = t1 * WBUF + kk * (TN / 4u);
      let a0 = xs[xb + ty];
      let a1 = xs[xb + 16u + ty];
      let b = ws[wb + tx];
      c0 += a0.x * b; c1 += a0.y * b; c2 += a0.z * b; c3 += a0.w * b;
      c4 += a1.x * b; c5 += a1.y * b; c6 += a1.z * b; c7 += a1.w * b;
    }
    if (more) {
      // The other buffer: its last readers finished tile t − 1 before the previous barrier.
      let n1 = 1u - t1;
      for (var i = 0u; i < 4u; i++) { xs[n1 * XBUF + xi + i * (TM / 4u)][rx % 4u] = sx[i]; }
      for (var i = 0u; i < 2u; i++) { ws[n1 * WBUF + wi + i * (TN / 4u)][rw % 4u] = sw[i]; }
    }
    workgroupBarrier();
  }
  let ma = m0 + 4u * ty;
  let mb = m0 + 64u + 4u * ty;
  let j = j0 + 4u * tx;
  put(ma, j, c0); put(ma + 1u, j, c1); put(ma + 2u, j, c2); put(ma + 3u, j, c3);
  put(mb, j, c4); put(mb + 1u, j, c5); put(mb + 2u, j, c6); put(mb + 3u, j, c7);
}
