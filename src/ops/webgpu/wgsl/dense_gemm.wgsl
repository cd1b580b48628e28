// Dense linear, M > 1: y[m, n0 + j] = bias[n0 + j] + Σ_k x[m, k] · W[j, k] over one chunk of output
// rows j < nc of W (a weight larger than one storage binding is split by output rows, linear.ts).
// Tiles of 64 × 64 outputs, 16 × 16 threads holding 4 × 4 accumulators each, K in steps of 16
// staged through workgroup memory; rows/columns strided by 16 so neighbouring threads read
// neighbouring shared words. f16/bf16 weights are widened in-kernel (common.wgsl widen()).
struct Params { m: u32, n: u32, k: u32, nc: u32, n0: u32, x_off: u32, o_off: u32, dtype: u32, has_bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

const TILE = 64u;
const KT = 16u;
var<workgroup> xs: array<f32, 1024>; // [KT][TILE]: xs[kk · 64 + mm]
var<workgroup> ws: array<f32, 1024>; // [KT][TILE]: ws[kk · 64 + nn]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) l: u32) {
  let m0 = wid.y * TILE;
  let j0 = wid.x * TILE;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.k; k0 += KT) {
    for (var q = 0u; q < 4u; q++) {
      let idx = l + 256u * q;
      let r = idx / KT;
      let kk = idx % KT;
      let k = k0 + kk;
      var xv = 0.0;
      if (m0 + r < p.m && k < p.k) { xv = x[p.x_off + (m0 + r) * p.k + k]; }
      xs[kk * TILE + r] = xv;
      var wv = 0.0;
      if (j0 + r < p.nc && k < p.k) {
        let e = (j0 + r) * p.k + k;
        wv = widen(w[word_index(e, p.dtype)], e, p.dtype);
      }
      ws[kk * TILE + r] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[kk * TILE + lid.y + 16u * i];
        b[i] = ws[kk * TILE + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var jj = 0u; jj < 4u; jj++) { acc[i * 4u + jj] += a[i] * b[jj]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y + 16u * i;
    for (var jj = 0u; jj < 4u; jj++) {
      let j = j0 + lid.x + 16u * jj;
      if (m < p.m && j < p.nc) {
        var v = acc[i * 4u + jj];
        if (p.has_bias == 1u) { v += bias[p.n0 + j]; }
        o[p.o_off + m * p.n + p.n0 + j] = v;
      }
    }
  }
}
