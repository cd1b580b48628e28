// Attention for few queries, pass 2 of 2 (att_split is pass 1): out[t, h, i] for row = t·H + h
// from the nb key blocks' partial results, rescaled to the row's maximum M = max_b m_b:
//   out = Σ_b exp(m_b − M) · acc_b[i] / Σ_b exp(m_b − M) · l_b
// Blocks without visible keys have l_b = 0 and acc_b = 0 and add nothing. The blocks' factors
// exp(m_b − M) are computed once into workgroup memory, NB_WG blocks at a time and in parallel
// (every output of a row uses the same ones); each invocation then sums its dims' blocks.
struct Params { rows: u32, d: u32, nb: u32, ml_off: u32, o_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

const WG = 128u;
const NB_WG = WG;          // block factors held at a time
const NEG_MAX = -3.4028234663852886e38; // −f32 max, as att_split

var<workgroup> fac: array<f32, NB_WG>;
var<workgroup> stat: array<f32, 2>; // M, then 1 / denominator

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) l: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; } // uniform per workgroup
  let mb = p.ml_off + 2u * row * p.nb;
  // M, then the denominator: the blocks' (m, l) pass through workgroup memory NB_WG at a time
  // (loaded in parallel), summed by one invocation in block order.
  var mx = NEG_MAX;
  for (var b0 = 0u; b0 < p.nb; b0 += NB_WG) {
    workgroupBarrier();
    if (b0 + l < p.nb) { fac[l] = part[mb + 2u * (b0 + l)]; }
    workgroupBarrier();
    if (l == 0u) {
      for (var c = 0u; c < min(NB_WG, p.nb - b0); c++) { mx = max(mx, fac[c]); }
    }
  }
  var den = 0.0;
  for (var b0 = 0u; b0 < p.nb; b0 += NB_WG) {
    workgroupBarrier();
    if (l == 0u) { stat[0] = mx; }
    workgroupBarrier();
    if (b0 + l < p.nb) { fac[l] = exp(part[mb + 2u * (b0 + l)] - stat[0]) * part[mb + 2u * (b0 + l) + 1u]; }
    workgroupBarrier();
    if (l == 0u) {
      for (var c = 0u; c < min(NB_WG, p.nb - b0); c++) { den += fac[c]; }
    }
  }
  if (l == 0u) {
    stat[0] = mx;
    stat[1] = 1.0 / den;
  }
  workgroupBarrier();
  let mrow = stat[0];
  let inv = stat[1];
  // Up to 2 dims per invocation here (d ≤ 256, att_split's limit); more in further rounds.
  for (var i0 = 0u; i0 < p.d; i0 += 2u * WG) {
    var acc0 = 0.0;
    var acc1 = 0.0;
    for (var b0 = 0u; b0 < p.nb; b0 += NB_WG) {
      workgroupBarrier(); // the previous factors are no longer read
      if (b0 + l < p.nb) { fac[l] = exp(part[mb + 2u * (b0 + l)] - mrow); }
      workgroupBarrier();
      let nbb = min(NB_WG, p.nb - b0);
      let i = i0 + l;
      for (var c = 0u; c < nbb; c++) {
        let ab = (row * p.nb + b0 + c) * p.d;
        if (i < p.d) { acc0 += fac[c] * part[ab + i]; }
        if (i + WG < p.d) { acc1 += fac[c] * part[ab + i + WG]; }
      }
    }
    if (i0 + l < p.d) { o[p.o_off + row * p.d + i0 + l] = acc0 * inv; }
    if (i0 + l + WG < p.d) { o[p.o_off + row * p.d + i0 + l + WG] = acc1 * inv; }
  }
}
