// LayerNorm over each row: (x − mean)/sqrt(var + eps)·w + b, biased variance, two passes (mean,
// then squared deviations) as torch computes it; one workgroup per row.
struct Params { rows: u32, cols: u32, x_off: u32, w_off: u32, b_off: u32, o_off: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

var<workgroup> part: array<f32, 256>;

fn reduce(l: u32, v: f32) -> f32 {
  part[l] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { part[l] += part[l + s]; }
    workgroupBarrier();
  }
  let total = part[0];
  workgroupBarrier(); // everyone has read part[0] before the next reduce overwrites it
  return total;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let base = p.x_off + r * p.cols;
  var s = 0.0;
  for (var i = l; i < p.cols; i += 256u) { s += x[base + i]; }
  let mean = reduce(l, s) / f32(p.cols);
  var v = 0.0;
  for (var i = l; i < p.cols; i += 256u) {
    let d = x[base + i] - mean;
    v += d * d;
  }
  let inv = 1.0 / sqrt(reduce(l, v) / f32(p.cols) + p.eps);
  let ob = p.o_off + r * p.cols;
  for (var i = l; i < p.cols; i += 256u) {
    o[ob + i] = (x[base + i] - mean) * inv * w[p.w_off + i] + b[p.b_off + i];
  }
}
