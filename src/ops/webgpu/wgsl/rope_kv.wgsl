// Rotary embedding of [q | k] and the KV-cache write of a step in one dispatch (ropeWriteKv):
//   o = rope(x), x [T, 2H, D] = q heads then k heads (the expression of rope.wgsl),
//   kv[k_off + t·H·D + h·D + i] = o[t, H + h, i]        (the rotated keys, rows start.. of kDst)
//   kv[v_off + t·H·D + j]       = v[v_in + t·H·D + j]   (the values, rows start.. of vDst)
// Invocations 0..n_qk−1 rotate, n_qk..n_qk+n_v−1 copy v. Why: in decode the two writeRows
// copies were copyBufferToBuffer, each ending the compute pass, plus a rope dispatch: three
// commands and two pass breaks per layer become one dispatch. Keys and values of a layer share
// one buffer (KvCache: [2, capacity, H, D]), bound once as `kv`.
struct Params { n_qk: u32, n_v: u32, h: u32, d: u32, x_off: u32, c_off: u32, s_off: u32, o_off: u32, v_in: u32, k_off: u32, v_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read> s: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> kv: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  let hd = p.h * p.d;
  if (e >= p.n_qk) {
    let j = e - p.n_qk;
    if (j < p.n_v) { kv[p.v_off + j] = v[p.v_in + j]; }
    return;
  }
  let i = e % p.d;
  let t = e / (2u * hd);
  let half = p.d / 2u;
  let row = e - i;
  let rot = select(x[p.x_off + row + i - half], -x[p.x_off + row + i + half], i < half);
  let val = x[p.x_off + e] * c[p.c_off + t * p.d + i] + rot * s[p.s_off + t * p.d + i];
  o[p.o_off + e] = val;
  let r = e - t * 2u * hd; // position within the token's 2H·D values
  if (r >= hd) { kv[p.k_off + t * hd + r - hd] = val; }
}
