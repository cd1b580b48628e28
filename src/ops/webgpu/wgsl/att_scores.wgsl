// Attention, step 1 of 3: S[t, hh, s] = scale · q[t, h0+hh]·k[s, h0+hh] for the heads h0..h0+hc−1
// (q [Tq, H, D], k [Tk, H, D]); masked scores (causal, s > q_off + t) are left for step 2 to zero.
struct Params { tq: u32, tk: u32, h: u32, d: u32, h0: u32, hc: u32, q_off: u32, k_off: u32, causal: u32, pos0: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read_write> sc: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  if (e >= p.tq * p.hc * p.tk) { return; }
  let s = e % p.tk;
  let row = e / p.tk; // t · hc + hh
  let hh = row % p.hc;
  let t = row / p.hc;
  if (p.causal == 1u && s > p.pos0 + t) { return; }
  let h = p.h0 + hh;
  let qb = p.q_off + (t * p.h + h) * p.d;
  let kb = p.k_off + (s * p.h + h) * p.d;
  var acc = 0.0;
  for (var i = 0u; i < p.d; i++) { acc += q[qb + i] * k[kb + i]; }
  sc[e] = acc * p.scale;
}
