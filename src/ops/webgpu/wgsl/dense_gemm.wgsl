// Dense linear, M > 1: y[m, n0 + j] = bias[n0 + j] + Σ_k x[m, k] · W[j, k] over one chunk of output
// rows j < nc of W (a weight larger than one storage binding is split by output rows, linear.ts).
// Tiles of 64 × 64 outputs (linear.ts dispatches ⌈nc/64⌉ × ⌈M/64⌉), 128 invocations holding
// 8 × 4 accumulators each (rows 4·ty + i and 32 + 4·ty + i, columns 4·tx + c), K in steps of
// KT = 32 staged through workgroup memory as [KT][64] so each step reads 3 vec4 for 32 FMAs.
// Why: 16 × 16 invocations of 4 × 4 with KT = 16 read two scalars per FMA pair from workgroup
// memory and ran at ≈ 12 TFLOP/s on an H200, 18 % of its f32 rate (docs/webgpu-h200.md).
// The next step's values are loaded into registers while the current one is computed.
// Loads: a group of 32 invocations reads 4 consecutive k of 8 rows, and stores them at row
// stride S = 72 (64 + 8): the 32 stores of a group fall into 32 different banks (4-byte banks:
// (8·kk + r) mod 32), and rows stay 16-byte aligned for the vec4 reads.
// f16/bf16 weights are widened in-kernel (common.wgsl widen()).
struct Params { m: u32, n: u32, k: u32, nc: u32, n0: u32, x_off: u32, o_off: u32, dtype: u32, has_bias: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

const TILE = 64u;
const KT = 32u;
const WG = 128u;
const S = 72u;                       // row stride of the staged tiles (floats)
const PER = TILE * KT / WG;          // staged values of x (and of W) per invocation and step
var<workgroup> xs: array<vec4<f32>, KT * S / 4u>; // xs[kk][mm] at kk · S + mm
var<workgroup> ws: array<vec4<f32>, KT * S / 4u>; // ws[kk][nn] at kk · S + nn

// Staged element q of invocation l: row r of the tile, k offset kk within the step.
fn slot(l: u32, q: u32) -> vec2u {
  let e = l + WG * q;
  return vec2u((e / 4u) % TILE, (e % 4u) + 4u * (e / (4u * TILE)));
}

fn load_x(m0: u32, k0: u32, l: u32, q: u32) -> f32 {
  let s = slot(l, q);
  let k = k0 + s.y;
  if (m0 + s.x < p.m && k < p.k) { return x[p.x_off + (m0 + s.x) * p.k + k]; }
  return 0.0;
}

fn load_w(j0: u32, k0: u32, l: u32, q: u32) -> f32 {
  let s = slot(l, q);
  let k = k0 + s.y;
  if (j0 + s.x < p.nc && k < p.k) {
    let e = (j0 + s.x) * p.k + k;
    return widen(w[word_index(e, p.dtype)], e, p.dtype);
  }
  return 0.0;
}

fn store(l: u32, xr: ptr<function, array<f32, PER>>, wr: ptr<function, array<f32, PER>>) {
  for (var q = 0u; q < PER; q++) {
    let s = slot(l, q);
    let a = s.y * S + s.x;
    xs[a / 4u][a % 4u] = (*xr)[q];
    ws[a / 4u][a % 4u] = (*wr)[q];
  }
}

@compute @workgroup_size(16, 8)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) l: u32) {
  let m0 = wid.y * TILE;
  let j0 = wid.x * TILE;
  let tx = lid.x; // columns 4·tx .. 4·tx+3
  let ty = lid.y; // rows 4·ty .. 4·ty+3 and 32 + 4·ty ..
  var acc: array<vec4<f32>, 8>; // acc[i]: row (i < 4 ? 4·ty + i : 32 + 4·ty + i − 4), 4 columns
  for (var i = 0u; i < 8u; i++) { acc[i] = vec4<f32>(0.0); }
  var xr: array<f32, PER>;
  var wr: array<f32, PER>;
  for (var q = 0u; q < PER; q++) {
    xr[q] = load_x(m0, 0u, l, q);
    wr[q] = load_w(j0, 0u, l, q);
  }
  store(l, &xr, &wr);
  workgroupBarrier();
  for (var k0 = 0u; k0 < p.k; k0 += KT) {
    let more = k0 + KT < p.k;
    if (more) {
      for (var q = 0u; q < PER; q++) {
        xr[q] = load_x(m0, k0 + KT, l, q);
        wr[q] = load_w(j0, k0 + KT, l, q);
      }
    }
    for (var kk = 0u; kk < KT; kk++) {
      let row = kk * (S / 4u);
      let a0 = xs[row + ty];
      let a1 = xs[row + 8u + ty];
      let b = ws[row + tx];
      acc[0] += a0.x * b; acc[1] += a0.y * b; acc[2] += a0.z * b; acc[3] += a0.w * b;
      acc[4] += a1.x * b; acc[5] += a1.y * b; acc[6] += a1.z * b; acc[7] += a1.w * b;
    }
    workgroupBarrier();
    if (more) {
      store(l, &xr, &wr);
      workgroupBarrier();
    }
  }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + select(32u + 4u * ty + i - 4u, 4u * ty + i, i < 4u);
    if (m < p.m) {
      for (var c = 0u; c < 4u; c++) {
        let j = j0 + 4u * tx + c;
        if (j < p.nc) {
          var v = acc[i][c];
          if (p.has_bias == 1u) { v += bias[p.n0 + j]; }
          o[p.o_off + m * p.n + p.n0 + j] = v;
        }
      }
    }
  }
}
