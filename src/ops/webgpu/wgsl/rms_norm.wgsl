// RMSNorm over each row of `cols`: x / sqrt(mean(x²) + eps) · w   (one workgroup per row).
// A decode step normalises one row of 4096 per call, one workgroup: its time is the latency of
// the invocations' loads, 18 µs per call on an H200 with one load in flight at a time
// (docs/webgpu-h200.md). Both loops therefore issue four independent loads per iteration.
struct Params { rows: u32, cols: u32, x_off: u32, w_off: u32, o_off: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

const WG = 256u;
var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; } // uniform per workgroup: barriers below stay in uniform control flow
  let base = p.x_off + r * p.cols;
  var s4 = vec4<f32>(0.0);
  var i = l;
  for (; i + 3u * WG < p.cols; i += 4u * WG) {
    let v = vec4<f32>(x[base + i], x[base + i + WG], x[base + i + 2u * WG], x[base + i + 3u * WG]);
    s4 += v * v;
  }
  for (; i < p.cols; i += WG) {
    let v = x[base + i];
    s4.x += v * v;
  }
  part[l] = (s4.x + s4.y) + (s4.z + s4.w);
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (l < s) { part[l] += part[l + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(part[0] / f32(p.cols) + p.eps);
  let ob = p.o_off + r * p.cols;
  i = l;
  for (; i + 3u * WG < p.cols; i += 4u * WG) {
    let v = vec4<f32>(x[base + i], x[base + i + WG], x[base + i + 2u * WG], x[base + i + 3u * WG]);
    let g = vec4<f32>(w[p.w_off + i], w[p.w_off + i + WG], w[p.w_off + i + 2u * WG], w[p.w_off + i + 3u * WG]);
    let y = v * inv * g;
    o[ob + i] = y.x;
    o[ob + i + WG] = y.y;
    o[ob + i + 2u * WG] = y.z;
    o[ob + i + 3u * WG] = y.w;
  }
  for (; i < p.cols; i += WG) {
    o[ob + i] = x[base + i] * inv * w[p.w_off + i];
  }
}
