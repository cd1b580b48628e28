// Attention for few queries (decode), split over the keys, flash-decoding style; pass 1 of 2.
// A decode step has one query row per head (32 rows for Qwen-7B) over a few hundred keys: one
// invocation per output summing every key in sequence used 16 workgroups of the 132
// multiprocessors of an H200 and took 4.1 ms per step (docs/webgpu-h200.md). Here workgroup
// (b, row) takes the BK keys s0 = b·BK .. s0+BK−1 of query row `row` = t·H + h and writes
//   m_b = max_s score(s),   l_b = Σ_s exp(score(s) − m_b),   acc_b[i] = Σ_s exp(score(s) − m_b) · v[s, h, i]
// over its visible keys (causal: s ≤ pos0 + t), score = scale · q[t, h]·k[s, h]. att_combine
// rescales and sums the blocks. A block without visible keys writes m = −f32 max, l = 0, acc = 0.
// Scratch: acc at [(row · nb + b) · d + i], then (m, l) at ml_off + 2 · (row · nb + b).
// Latency, not bandwidth, bounds a block (32 keys × d values of k and of v): invocation i < d
// loads its dim of all BK values of v into registers first, and the score loops have constant
// trip counts, so every load of a block is in flight at once rather than one after another.
struct Params { tq: u32, tk: u32, h: u32, d: u32, q_off: u32, k_off: u32, v_off: u32, causal: u32, pos0: u32, nb: u32, ml_off: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;

const WG = 256u;
const BK = 32u;           // keys per workgroup; backend.ts ATT_SPLIT_KEYS
const LANES = WG / BK;    // invocations per key in the dot products
const DMAX = WG;          // largest head dim of this path (backend.ts ATT_SPLIT_MAX_D): one dim per invocation
const NEG_MAX = -3.4028234663852886e38; // −f32 max: below every finite score

var<workgroup> qs: array<f32, DMAX>;
var<workgroup> dots: array<f32, WG>;
var<workgroup> pe: array<f32, BK>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let b = wid.x;
  let row = wid.y;
  let t = row / p.h;
  let hh = row % p.h;
  let visible = select(p.tk, min(p.tk, p.pos0 + t + 1u), p.causal == 1u);
  let s0 = b * BK;
  let n = select(0u, min(BK, visible - s0), visible > s0); // visible keys of this block
  if (l < p.d) { qs[l] = q[p.q_off + row * p.d + l]; }
  var vr: array<f32, BK>;
  for (var c = 0u; c < BK; c++) {
    vr[c] = 0.0;
    if (l < p.d && c < n) { vr[c] = v[p.v_off + ((s0 + c) * p.h + hh) * p.d + l]; }
  }
  workgroupBarrier();

  // Scores: LANES invocations per key, dims lane + LANES·m (neighbours read neighbouring values
  // of one key row), then summed in a fixed order.
  let j = l / LANES;
  let lane = l % LANES;
  var dot = 0.0;
  if (j < n) {
    let kb = p.k_off + ((s0 + j) * p.h + hh) * p.d;
    for (var m = 0u; m < DMAX / LANES; m++) {
      let i = lane + LANES * m;
      if (i < p.d) { dot += qs[i] * k[kb + i]; }
    }
  }
  dots[l] = dot;
  workgroupBarrier();
  if (l < BK) {
    var sc = NEG_MAX;
    if (l < n) {
      var s = 0.0;
      for (var c = 0u; c < LANES; c++) { s += dots[l * LANES + c]; }
      sc = s * p.scale;
    }
    pe[l] = sc;
  }
  workgroupBarrier();
  // Every invocation reads the same BK scores in the same order: one block maximum for all.
  var m = NEG_MAX;
  for (var c = 0u; c < n; c++) { m = max(m, pe[c]); }
  workgroupBarrier();
  if (l < BK) { pe[l] = select(0.0, exp(pe[l] - m), l < n); }
  workgroupBarrier();

  if (l < p.d) {
    var acc = 0.0;
    for (var c = 0u; c < BK; c++) { acc += pe[c] * vr[c]; } // pe = 0 and vr = 0 past n
    part[(row * p.nb + b) * p.d + l] = acc;
  }
  if (l == 0u) {
    var sum = 0.0;
    for (var c = 0u; c < n; c++) { sum += pe[c]; }
    part[p.ml_off + 2u * (row * p.nb + b)] = m;
    part[p.ml_off + 2u * (row * p.nb + b) + 1u] = sum;
  }
}
