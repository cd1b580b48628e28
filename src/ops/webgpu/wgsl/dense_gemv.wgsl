// Dense linear, M = 1 (decode): y[n0 + j] = bias[n0 + j] + Σ_k x[k] · W[j, k]. Eight outputs per
// workgroup, 32 invocations striding K for each (consecutive weights across neighbours), then a
// tree reduction in workgroup memory.
struct Params { n: u32, k: u32, nc: u32, n0: u32, x_off: u32, o_off: u32, dtype: u32, has_bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let j = (wid.x + wid.y * nwg.x) * 8u + l / 32u;
  let lane = l % 32u;
  var acc = 0.0;
  if (j < p.nc) {
    let row = j * p.k;
    for (var k = lane; k < p.k; k += 32u) {
      let e = row + k;
      acc += x[p.x_off + k] * widen(w[word_index(e, p.dtype)], e, p.dtype);
    }
  }
  part[l] = acc;
  workgroupBarrier();
  for (var s = 16u; s > 0u; s >>= 1u) {
    if (lane < s) { part[l] += part[l + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && j < p.nc) {
    var v = part[l];
    if (p.has_bias == 1u) { v += bias[p.n0 + j]; }
    o[p.o_off + p.n0 + j] = v;
  }
}
