// GPTQ int4 linear, M > 1 (prefill): same dequantisation as gptq_gemv.wgsl. A workgroup owns 64
// output columns × 8 rows of x; x is staged 32 values of K at a time in workgroup memory and each
// dequantised weight is used for all 8 rows (8× less weight traffic than per-row GEMVs).
struct Params { m: u32, n: u32, k: u32, nc: u32, n0: u32, gs: u32, seq_g: u32, x_off: u32, o_off: u32, has_bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> qw: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> zp: array<f32>;
@group(0) @binding(5) var<storage, read> gidx: array<u32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> o: array<f32>;

const TM = 8u;
const KT = 32u;
var<workgroup> xs: array<f32, 256>; // [TM][KT]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let j = wid.x * 64u + l;
  let m0 = wid.y * TM;
  let words = p.k / 8u;
  var acc: array<f32, 8>;
  for (var k0 = 0u; k0 < p.k; k0 += KT) {
    for (var q = 0u; q < 4u; q++) {
      let idx = l + 64u * q;
      let r = idx / KT;
      let kk = idx % KT;
      var v = 0.0;
      if (m0 + r < p.m && k0 + kk < p.k) { v = x[p.x_off + (m0 + r) * p.k + k0 + kk]; }
      xs[idx] = v;
    }
    workgroupBarrier();
    if (j < p.nc) {
      for (var wb = 0u; wb < KT / 8u; wb++) {
        let wi = k0 / 8u + wb;
        if (wi < words) {
          let word = qw[wi * p.nc + j];
          for (var b = 0u; b < 8u; b++) {
            let k = wi * 8u + b;
            let g = select(gidx[k], k / p.gs, p.seq_g == 1u);
            let wv = scales[g * p.nc + j] * (f32((word >> (4u * b)) & 15u) - zp[g * p.nc + j]);
            for (var r = 0u; r < TM; r++) { acc[r] += xs[r * KT + wb * 8u + b] * wv; }
          }
        }
      }
    }
    workgroupBarrier();
  }
  if (j < p.nc) {
    for (var r = 0u; r < TM; r++) {
      if (m0 + r < p.m) {
        var v = acc[r];
        if (p.has_bias == 1u) { v += bias[p.n0 + j]; }
        o[p.o_off + (m0 + r) * p.n + p.n0 + j] = v;
      }
    }
  }
}
