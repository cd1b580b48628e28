// out = a · silu(b), silu(b) = b / (1 + e^(−b))  (upstream Qwen-VL-Chat modeling_qwen.py QWenMLP:
// a1 * F.silu(a2)). For b ≪ 0, e^(−b) overflows to +Inf and b/Inf = −0, the limit.
struct Params { n: u32, a_off: u32, b_off: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_index(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let bv = b[p.b_off + i];
  o[p.o_off + i] = a[p.a_off + i] * (bv / (1.0 + exp(-bv)));
}
