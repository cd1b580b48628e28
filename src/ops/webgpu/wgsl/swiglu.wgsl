// out = a · silu(b), silu(b) = b / (1 + e^(−b)): common.wgsl swiglu_gate.
struct Params { n: u32, a_off: u32, b_off: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg, 256u);
  if (i >= p.n) { return; }
  o[p.o_off + i] = swiglu_gate(a[p.a_off + i], b[p.b_off + i]);
}
