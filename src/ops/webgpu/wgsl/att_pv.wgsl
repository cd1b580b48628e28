// Attention, step 3 of 3: out[t, h0+hh, i] = Σ_s P[t, hh, s] · v[s, h0+hh, i] over the visible keys.
struct Params { tq: u32, tk: u32, h: u32, d: u32, h0: u32, hc: u32, v_off: u32, o_off: u32, causal: u32, pos0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sc: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  if (e >= p.tq * p.hc * p.d) { return; }
  let i = e % p.d;
  let row = e / p.d; // t · hc + hh
  let hh = row % p.hc;
  let t = row / p.hc;
  let h = p.h0 + hh;
  let visible = select(p.tk, min(p.tk, p.pos0 + t + 1u), p.causal == 1u);
  let pb = row * p.tk;
  var acc = 0.0;
  for (var s = 0u; s < visible; s++) { acc += sc[pb + s] * v[p.v_off + (s * p.h + h) * p.d + i]; }
  o[p.o_off + (t * p.h + h) * p.d + i] = acc;
}
