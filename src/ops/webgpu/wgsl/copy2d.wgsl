// Strided copy of `rows` rows of `width` values: dst[d_off + r·d_stride + c] = src[s_off + r·s_stride + c]
// (sliceColumns of several rows).
struct Params { rows: u32, width: u32, s_off: u32, s_stride: u32, d_off: u32, d_stride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  if (e >= p.rows * p.width) { return; }
  let r = e / p.width;
  let c = e % p.width;
  dst[p.d_off + r * p.d_stride + c] = src[p.s_off + r * p.s_stride + c];
}
