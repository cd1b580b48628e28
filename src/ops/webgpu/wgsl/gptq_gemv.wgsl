// GPTQ int4 linear, M = 1 (decode), dequantised in-kernel with f32 accumulation:
//   W[k, j] = scale[g, j] · (q[k, j] − zp[g, j]),  g = g_idx[k],  zp = stored zero + 1 (linear.ts)
//   q[k, j] = (qweight[k/8, j] >> 4·(k%8)) & 15        (AutoGPTQ packing, src/ops/backend.ts)
// qweight is [K/8, nc] words: a vec4<u32> holds one packed row (8 values of k) of 4 neighbouring
// columns, so each invocation owns 4 columns and reads 16 bytes per load (scales and zero points
// likewise as vec4<f32>). A workgroup is 8 column quads (32 columns, 128 contiguous bytes per
// packed row) × 32 K-splits; each split owns runs of U consecutive packed rows and issues their U
// loads before using any (16 × 16 bytes in flight per invocation: the bandwidth × latency
// product of an H200 multiprocessor, ≈ 32 GB/s × ~1 µs, needs tens of KiB in flight each). x is staged through workgroup memory a tile of 32·U packed rows at a
// time and read as vec4. Why: the previous 16 columns × 16 splits of scalar loads read 575 GB/s
// on an H200, 14 % of the card's 4239 GB/s (docs/webgpu-h200.md). nc % 4 == 0 (GPTQ needs
// N % 8 == 0 and linear.ts splits by multiples of 8). `seq_g` = 1 when g_idx[k] = k / group_size
// (no act-order): one group per packed row. The 32 splits are summed in a fixed order.
// `glu` = 1: x holds [a | b] (2K values) and the GEMV's input is swiglu_gate(a[k], b[k]), computed
// while x is staged (swigluMatmul: the down projection of the MLP, no swiglu dispatch before it).
struct Params { n: u32, k: u32, nc: u32, n0: u32, gs: u32, seq_g: u32, x_off: u32, o_off: u32, has_bias: u32, glu: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> qw: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> scales: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> zp: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> gidx: array<u32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> o: array<f32>;

const QX = 8u;              // column quads per workgroup (backend: linear.ts GPTQ_GEMV_COLUMNS = 4·QX)
const SPLITS = 32u;         // K-splits per workgroup
const U = 16u;              // consecutive packed rows per split and tile: one group of 128 (Qwen's group size)
const TROWS = SPLITS * U;   // packed rows per tile
var<workgroup> xs: array<vec4<f32>, TROWS * 2u>; // x of one tile: 8 values per packed row
var<workgroup> part: array<vec4<f32>, SPLITS * QX>;

// 2^23 + q[k0 + b] of the 4 columns, as f32: q < 16 fills the low mantissa bits of 2^23 exactly.
// Minus 2^23 + zp (exact: zp is an integer ≤ 16) this is exactly q − zp, as f32(q) − zp would
// be, without an integer-to-float conversion per weight.
fn unpack(w: vec4<u32>, b: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(((w >> vec4<u32>(4u * b)) & vec4<u32>(15u)) | vec4<u32>(0x4b000000u));
}
const TWO23 = 8388608.0; // 2^23

@compute @workgroup_size(8, 32)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) l: u32) {
  let nq = p.nc / 4u;
  let jq = wid.x * QX + lid.x;
  let words = p.k / 8u;
  var acc = vec4<f32>(0.0);
  // A run starts at a multiple of U: with sequential groups of a multiple of 8·U values of k
  // its U rows share one group, whose scales and zero points are then read once.
  let one = p.seq_g == 1u && (p.gs / 8u) % U == 0u;
  for (var r0 = 0u; r0 < words; r0 += TROWS) {
    // This tile's weights first: their loads are in flight while x is staged below.
    let rb = r0 + lid.y * U;
    var wv: array<vec4<u32>, U>;
    var s_run = vec4<f32>(0.0);
    var z_run = vec4<f32>(0.0);
    if (jq < nq) {
      for (var u = 0u; u < U; u++) {
        let r = rb + u;
        wv[u] = select(vec4<u32>(0u), qw[min(r, words - 1u) * nq + jq], r < words);
      }
      if (one && rb < words) {
        let g = rb * 8u / p.gs;
        s_run = scales[g * nq + jq];
        z_run = zp[g * nq + jq] + TWO23;
      }
    }
    workgroupBarrier(); // the previous tile's x is no longer read
    for (var e = l; e < TROWS * 2u; e += QX * SPLITS) {
      let k0 = r0 * 8u + e * 4u;
      var xv = vec4<f32>(0.0);
      if (k0 < p.k) { // K % 8 == 0: a packed row is all in or all out
        let xb = p.x_off + k0;
        xv = vec4<f32>(x[xb], x[xb + 1u], x[xb + 2u], x[xb + 3u]);
        if (p.glu == 1u) {
          let gb = xb + p.k;
          xv = vec4<f32>(swiglu_gate(xv.x, x[gb]), swiglu_gate(xv.y, x[gb + 1u]), swiglu_gate(xv.z, x[gb + 2u]), swiglu_gate(xv.w, x[gb + 3u]));
        }
      }
      xs[e] = xv;
    }
    workgroupBarrier();
    if (jq < nq) {
      for (var u = 0u; u < U; u++) {
        let r = rb + u;
        if (r < words) {
          let lr = lid.y * U + u;
          let xa = xs[2u * lr];
          let xb = xs[2u * lr + 1u];
          let k0 = r * 8u;
          if (p.seq_g == 1u) {
            var s = s_run;
            var z = z_run;
            if (!one) {
              let g = k0 / p.gs;
              s = scales[g * nq + jq];
              z = zp[g * nq + jq] + TWO23;
            }
            acc += xa.x * (s * (unpack(wv[u], 0u) - z));
            acc += xa.y * (s * (unpack(wv[u], 1u) - z));
            acc += xa.z * (s * (unpack(wv[u], 2u) - z));
            acc += xa.w * (s * (unpack(wv[u], 3u) - z));
            acc += xb.x * (s * (unpack(wv[u], 4u) - z));
            acc += xb.y * (s * (unpack(wv[u], 5u) - z));
            acc += xb.z * (s * (unpack(wv[u], 6u) - z));
            acc += xb.w * (s * (unpack(wv[u], 7u) - z));
          } else {
            for (var b = 0u; b < 8u; b++) {
              let g = gidx[k0 + b];
              let xk = select(xb[b & 3u], xa[b & 3u], b < 4u);
              acc += xk * (scales[g * nq + jq] * (unpack(wv[u], b) - (zp[g * nq + jq] + TWO23)));
            }
          }
        }
      }
    }
  }
  part[lid.y * QX + lid.x] = acc;
  workgroupBarrier();
  if (lid.y == 0u && jq < nq) {
    // In a fixed order: results do not depend on scheduling.
    var sum = vec4<f32>(0.0);
    for (var r = 0u; r < SPLITS; r++) { sum += part[r * QX + lid.x]; }
    for (var c = 0u; c < 4u; c++) {
      let j = jq * 4u + c;
      var val = sum[c];
      if (p.has_bias == 1u) { val += bias[p.n0 + j]; }
      o[p.o_off + p.n0 + j] = val;
    }
  }
}
