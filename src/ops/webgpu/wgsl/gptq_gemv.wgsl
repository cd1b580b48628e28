// GPTQ int4 linear, M = 1 (decode), dequantised in-kernel with f32 accumulation:
//   W[k, j] = scale[g, j] · (q[k, j] − zp[g, j]),  g = g_idx[k],  zp = stored zero + 1 (linear.ts)
//   q[k, j] = (qweight[k/8, j] >> 4·(k%8)) & 15        (AutoGPTQ packing, src/ops/backend.ts)
// 16 output columns per workgroup (neighbours read neighbouring qweight words: 64-byte rows),
// 16 invocations per column splitting the K/8 packed rows, summed in workgroup memory. Why 16×16
// and not 64×4: on an H200 (132 multiprocessors) 64 columns per workgroup gave only 64
// workgroups for a 4096-wide output and the GEMV read 290 GB/s (docs/webgpu-h200.md); 16 columns
// give 4× the workgroups and 4× the loads in flight per column. `seq_g` = 1 when
// g_idx[k] = k / group_size (no act-order): the group is then fixed for each packed word.
struct Params { n: u32, k: u32, nc: u32, n0: u32, gs: u32, seq_g: u32, x_off: u32, o_off: u32, has_bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> qw: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> zp: array<f32>;
@group(0) @binding(5) var<storage, read> gidx: array<u32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> o: array<f32>;

var<workgroup> part: array<f32, 256>; // [16 K-splits][16 columns]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let j = wid.x * 16u + lid.x;
  let words = p.k / 8u;
  var acc = 0.0;
  if (j < p.nc) {
    for (var wi = lid.y; wi < words; wi += 16u) {
      let word = qw[wi * p.nc + j];
      let k0 = wi * 8u;
      if (p.seq_g == 1u) {
        let g = k0 / p.gs;
        let s = scales[g * p.nc + j];
        let z = zp[g * p.nc + j];
        for (var b = 0u; b < 8u; b++) {
          let q = f32((word >> (4u * b)) & 15u);
          acc += x[p.x_off + k0 + b] * (s * (q - z));
        }
      } else {
        for (var b = 0u; b < 8u; b++) {
          let g = gidx[k0 + b];
          let q = f32((word >> (4u * b)) & 15u);
          acc += x[p.x_off + k0 + b] * (scales[g * p.nc + j] * (q - zp[g * p.nc + j]));
        }
      }
    }
  }
  part[lid.y * 16u + lid.x] = acc;
  workgroupBarrier();
  if (lid.y == 0u && j < p.nc) {
    // In a fixed order: results do not depend on scheduling.
    var v = 0.0;
    for (var r = 0u; r < 16u; r++) { v += part[r * 16u + lid.x]; }
    if (p.has_bias == 1u) { v += bias[p.n0 + j]; }
    o[p.o_off + p.n0 + j] = v;
  }
}
