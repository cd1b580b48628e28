// Attention for few queries, pass 2 of 2 (att_split is pass 1): out[t, h, i] for row = t·H + h
// from the nb key blocks' partial results, rescaled to the row's maximum M = max_b m_b:
//   out = Σ_b exp(m_b − M) · acc_b[i] / Σ_b exp(m_b − M) · l_b
// Blocks without visible keys have l_b = 0 and acc_b = 0 and add nothing. Every invocation
// computes M and the denominator over the blocks in the same order, so they agree.
struct Params { rows: u32, d: u32, nb: u32, ml_off: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

const NEG_MAX = -3.4028234663852886e38; // −f32 max, as att_split

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let mb = p.ml_off + 2u * row * p.nb;
  var mx = NEG_MAX;
  for (var b = 0u; b < p.nb; b++) { mx = max(mx, part[mb + 2u * b]); }
  var den = 0.0;
  for (var b = 0u; b < p.nb; b++) { den += exp(part[mb + 2u * b] - mx) * part[mb + 2u * b + 1u]; }
  let inv = 1.0 / den;
  for (var i = l; i < p.d; i += 128u) {
    var acc = 0.0;
    for (var b = 0u; b < p.nb; b++) { acc += exp(part[mb + 2u * b] - mx) * part[(row * p.nb + b) * p.d + i]; }
    o[p.o_off + row * p.d + i] = acc * inv;
  }
}
