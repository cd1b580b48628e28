// Rotary embedding, rotate-half form, over x [T, H, D] with cos/sin [T, D]:
//   out = x·cos + rotate_half(x)·sin,  rotate_half([x1, x2]) = [−x2, x1]
// (upstream modeling_qwen.py apply_rotary_pos_emb / _rotate_half).
struct Params { n: u32, h: u32, d: u32, x_off: u32, c_off: u32, s_off: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read> s: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  if (e >= p.n) { return; }
  let i = e % p.d;
  let t = e / (p.h * p.d);
  let half = p.d / 2u;
  let row = e - i;
  let rot = select(x[p.x_off + row + i - half], -x[p.x_off + row + i + half], i < half);
  o[p.o_off + e] = x[p.x_off + e] * c[p.c_off + t * p.d + i] + rot * s[p.s_off + t * p.d + i];
}
