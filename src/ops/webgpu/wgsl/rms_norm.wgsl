// RMSNorm over each row of `cols`: x / sqrt(mean(x²) + eps) · w   (one workgroup per row).
struct Params { rows: u32, cols: u32, x_off: u32, w_off: u32, o_off: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; } // uniform per workgroup: barriers below stay in uniform control flow
  let base = p.x_off + r * p.cols;
  var ss = 0.0;
  for (var i = l; i < p.cols; i += 256u) {
    let v = x[base + i];
    ss += v * v;
  }
  part[l] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { part[l] += part[l + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(part[0] / f32(p.cols) + p.eps);
  let ob = p.o_off + r * p.cols;
  for (var i = l; i < p.cols; i += 256u) {
    o[ob + i] = x[base + i] * inv * w[p.w_off + i];
  }
}
