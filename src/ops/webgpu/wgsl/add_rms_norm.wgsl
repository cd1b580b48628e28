// The residual step of a decoder block in one dispatch (one workgroup per row):
//   sum = a + b;   checkFinite(sum) as finite.wgsl;   o = RMSNorm(sum) · w as rms_norm.wgsl.
// Each value is computed by the same expressions in the same order as the three separate
// shaders (add.wgsl, finite.wgsl, rms_norm.wgsl), so the outputs are bit-identical to theirs.
struct Params { rows: u32, cols: u32, a_off: u32, b_off: u32, w_off: u32, index: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> sum: array<f32>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>, 4>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; } // uniform per workgroup: barriers below stay in uniform control flow
  let row = r * p.cols;
  var ss = 0.0;
  for (var i = l; i < p.cols; i += 256u) {
    let v = a[p.a_off + row + i] + b[p.b_off + row + i];
    sum[row + i] = v;
    ss += v * v;
    let bits = bitcast<u32>(v);
    if ((bits & 0x7f800000u) == 0x7f800000u) {
      var kind = 0u;
      if ((bits & 0x007fffffu) == 0u) { kind = select(1u, 2u, (bits >> 31u) == 1u); }
      atomicMin(&status[0], p.index * 4u + kind);
    }
  }
  part[l] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { part[l] += part[l + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(part[0] / f32(p.cols) + p.eps);
  for (var i = l; i < p.cols; i += 256u) {
    o[row + i] = sum[row + i] * inv * w[p.w_off + i];
  }
}
