// Attention, step 2 of 3: each score row (t, hh) becomes softmax over its visible keys
// (0..q_off+t when causal, all Tk otherwise), max-subtracted; masked entries become 0.
struct Params { rows: u32, tk: u32, hc: u32, causal: u32, pos0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> sc: array<f32>;

var<workgroup> part: array<f32, 256>;

fn reduce_max(l: u32, v: f32) -> f32 {
  part[l] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { part[l] = max(part[l], part[l + s]); }
    workgroupBarrier();
  }
  let r = part[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(l: u32, v: f32) -> f32 {
  part[l] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l < s) { part[l] += part[l + s]; }
    workgroupBarrier();
  }
  let r = part[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let t = row / p.hc;
  let visible = select(p.tk, min(p.tk, p.pos0 + t + 1u), p.causal == 1u);
  let base = row * p.tk;
  var m = -3.4028234663852886e38; // −f32 max: every visible score is finite or the check catches it later
  for (var s = l; s < visible; s += 256u) { m = max(m, sc[base + s]); }
  m = reduce_max(l, m);
  var sum = 0.0;
  for (var s = l; s < visible; s += 256u) {
    let e = exp(sc[base + s] - m);
    sc[base + s] = e;
    sum += e;
  }
  let inv = 1.0 / reduce_sum(l, sum);
  for (var s = l; s < p.tk; s += 256u) {
    sc[base + s] = select(0.0, sc[base + s] * inv, s < visible);
  }
}
