// Attention over many queries (image encoder, prefill) in one pass, flash-attention style:
// scores, online softmax and P·V per tile, never writing the [Tq, Tk] score matrix. The
// three-pass path (att_scores, att_softmax, att_pv) took 9.8 ms per 1024-token vision layer on
// an H200, one invocation per score reading q and k from memory (docs/webgpu-h200.md).
//
// Workgroup (qb, h) takes the BQ queries t0 = qb·BQ .. t0+BQ−1 of head h (Q in workgroup memory)
// and walks the keys in tiles of BK. Per tile: S = scale · Q·Kᵀ (BQ × BK, 2 × 2 per invocation);
// per row the running maximum m, the rescale factor α = exp(m_old − m_new), the weights
// P = exp(S − m_new) and the running sum l = α·l + Σ P; then O = α·O + P·V (BQ × d, 2 rows × 4
// consecutive dims of each DH-slice per invocation, in registers). out = O / l. Q, K and V sit in
// workgroup memory as vec4 along the head dim, zero past d, so any d works and each vec4 read
// feeds 8 (P·V) or 16 (Q·Kᵀ) FMAs. K and V pass through workgroup memory
// DH dims at a time: 32 KiB of workgroup memory (lavapipe's limit, and WebGPU's default 16 KiB
// raised to the adapter's by device.ts) does not hold Q and a whole K tile of 128 dims.
// Masked scores (causal: s > pos0 + t; keys past Tk) get weight 0 by their indices, never by
// an infinity; causal blocks stop at their last visible key. Head dim d ≤ DMAX (backend.ts).
// Row strides in workgroup memory are odd numbers of vec4: 8 neighbouring invocations reading
// 8 rows then hit 8 different 16-byte bank groups (32 four-byte banks).
struct Params { tq: u32, tk: u32, h: u32, d: u32, q_off: u32, k_off: u32, v_off: u32, o_off: u32, causal: u32, pos0: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

const WG = 256u;
const BQ = 32u;           // queries per workgroup; backend.ts ATT_FLASH_QUERIES
const BK = 32u;           // keys per tile
const DMAX = 128u;        // largest head dim (Qwen-VL: 128 in the decoder, 104 in the ViT)
const DH = 64u;           // dims of K and V per pass through workgroup memory: DMAX / 2
const QS = DMAX / 4u + 1u; // row stride of Q in vec4 (odd)
const KS = DH / 4u + 1u;   // row stride of a K or V slice in vec4 (odd)
const SPS = BK + 1u;      // odd row stride of the weights P
const NEG_MAX = -3.4028234663852886e38; // −f32 max: the running maximum before any key

var<workgroup> qs: array<vec4<f32>, BQ * QS>;
var<workgroup> kv: array<vec4<f32>, BK * KS>;
var<workgroup> sp: array<f32, BQ * SPS>;
var<workgroup> red: array<f32, WG>;
var<workgroup> row_m: array<f32, BQ>;
var<workgroup> row_l: array<f32, BQ>;
var<workgroup> row_a: array<f32, BQ>;

// Dims dc0 .. dc0+DH−1 of keys s0 .. s0+BK−1 of k or v into kv; zeros past nk keys and d dims.
fn load_slice(is_v: bool, s0: u32, nk: u32, hh: u32, dc0: u32, l: u32) {
  for (var e = l; e < BK * DH; e += WG) {
    let j = e / DH;
    let i = e % DH;
    var val = 0.0;
    if (j < nk && dc0 + i < p.d) {
      let idx = ((s0 + j) * p.h + hh) * p.d + dc0 + i;
      if (is_v) { val = v[p.v_off + idx]; } else { val = k[p.k_off + idx]; }
    }
    kv[j * KS + i / 4u][i % 4u] = val;
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let t0 = wid.x * BQ;
  let hh = wid.y;
  let d = p.d;
  let ty = l / 16u; // rows ty, ty + 16
  let tx = l % 16u; // keys tx, tx + 16; dims dc0 + 4·tx .. dc0 + 4·tx + 3
  let nq = min(BQ, p.tq - t0);
  // Keys any row of this block sees: causal rows see s ≤ pos0 + t.
  var kend = p.tk;
  if (p.causal == 1u) { kend = min(p.tk, p.pos0 + t0 + nq); }

  for (var e = l; e < BQ * DMAX; e += WG) {
    let r = e / DMAX;
    let i = e % DMAX;
    var val = 0.0;
    if (r < nq && i < d) { val = q[p.q_off + ((t0 + r) * p.h + hh) * d + i]; }
    qs[r * QS + i / 4u][i % 4u] = val;
  }
  if (l < BQ) {
    row_m[l] = NEG_MAX;
    row_l[l] = 0.0;
  }
  // O for rows ty (o0*) and ty + 16 (o1*), dims 4·tx .. 4·tx+3 of the first DH (lo) and second (hi).
  var o0lo = vec4<f32>(0.0); var o0hi = vec4<f32>(0.0);
  var o1lo = vec4<f32>(0.0); var o1hi = vec4<f32>(0.0);

  for (var s0 = 0u; s0 < kend; s0 += BK) {
    let nk = min(BK, kend - s0);
    var s00 = 0.0; var s01 = 0.0; var s10 = 0.0; var s11 = 0.0;
    for (var dc0 = 0u; dc0 < d; dc0 += DH) {
      workgroupBarrier(); // kv is no longer read (previous slice, or P·V of the previous tile)
      load_slice(false, s0, nk, hh, dc0, l);
      workgroupBarrier();
      let n4 = (min(DH, d - dc0) + 3u) / 4u; // zeros past d add nothing
      let qb = dc0 / 4u;
      for (var i = 0u; i < n4; i++) {
        let a0 = qs[ty * QS + qb + i];
        let a1 = qs[(ty + 16u) * QS + qb + i];
        let b0 = kv[tx * KS + i];
        let b1 = kv[(tx + 16u) * KS + i];
        s00 += dot(a0, b0); s01 += dot(a0, b1); s10 += dot(a1, b0); s11 += dot(a1, b1);
      }
    }
    sp[ty * SPS + tx] = s00 * p.scale;
    sp[ty * SPS + tx + 16u] = s01 * p.scale;
    sp[(ty + 16u) * SPS + tx] = s10 * p.scale;
    sp[(ty + 16u) * SPS + tx + 16u] = s11 * p.scale;
    workgroupBarrier();

    // Online softmax: 8 invocations per row, 4 keys each (keys c8 + 8·u).
    let r = l / 8u;
    let c8 = l % 8u;
    var vis = 0u; // visible keys of this tile for row r
    if (r < nq) {
      var last = kend;
      if (p.causal == 1u) { last = min(p.tk, p.pos0 + t0 + r + 1u); }
      vis = select(0u, min(nk, last - s0), last > s0);
    }
    var lm = NEG_MAX;
    for (var u = 0u; u < 4u; u++) {
      let j = c8 + 8u * u;
      if (j < vis) { lm = max(lm, sp[r * SPS + j]); }
    }
    red[l] = lm;
    workgroupBarrier();
    var tm = row_m[r];
    for (var c = 0u; c < 8u; c++) { tm = max(tm, red[r * 8u + c]); }
    workgroupBarrier();
    var ls = 0.0;
    for (var u = 0u; u < 4u; u++) {
      let j = c8 + 8u * u;
      let pj = select(0.0, exp(sp[r * SPS + j] - tm), j < vis);
      sp[r * SPS + j] = pj;
      ls += pj;
    }
    red[l] = ls;
    workgroupBarrier();
    if (c8 == 0u) {
      var sum = 0.0;
      for (var c = 0u; c < 8u; c++) { sum += red[r * 8u + c]; }
      let alpha = exp(row_m[r] - tm);
      row_a[r] = alpha;
      row_l[r] = row_l[r] * alpha + sum;
      row_m[r] = tm;
    }
    workgroupBarrier();

    let a0 = row_a[ty];
    let a1 = row_a[ty + 16u];
    o0lo *= a0; o0hi *= a0; o1lo *= a1; o1hi *= a1;
    for (var dc0 = 0u; dc0 < d; dc0 += DH) {
      if (dc0 > 0u) { workgroupBarrier(); } // the previous V slice is no longer read
      load_slice(true, s0, nk, hh, dc0, l);
      workgroupBarrier();
      // Zeros past d in the slice: dims beyond the head add nothing (and are never written).
      var add0 = vec4<f32>(0.0);
      var add1 = vec4<f32>(0.0);
      for (var j = 0u; j < nk; j++) {
        let vv = kv[j * KS + tx];
        add0 += sp[ty * SPS + j] * vv;
        add1 += sp[(ty + 16u) * SPS + j] * vv;
      }
      if (dc0 == 0u) { o0lo += add0; o1lo += add1; } else { o0hi += add0; o1hi += add1; }
    }
  }

  for (var half = 0u; half < 2u; half++) {
    let r = ty + 16u * half;
    if (r < nq) {
      let inv = 1.0 / row_l[r];
      let ob = p.o_off + ((t0 + r) * p.h + hh) * d;
      let lo = select(o0lo, o1lo, half == 1u);
      let hi = select(o0hi, o1hi, half == 1u);
      for (var c = 0u; c < 4u; c++) {
        let i = 4u * tx + c;
        if (i < d) { o[ob + i] = lo[c] * inv; }
        if (DH + i < d) { o[ob + DH + i] = hi[c] * inv; }
      }
    }
  }
}
