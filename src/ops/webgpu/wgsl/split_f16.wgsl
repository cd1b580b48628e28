// A batch of strided f32 matrices x[b][r][c] (element x_off + b·bs + r·rs + c·cs, r < R, c < C)
// → for each b two f16 matrices hi, lo [RP, CP] and a power-of-two scale per row, for
// dense_gemm_mma.wgsl (a linear's input: one batch, rs = C, cs = 1; attention's q, k, p and vᵀ:
// one batch per head, strided views of [T, H, D] and of the scores): the matrix units multiply f16 operands only, and one f16 keeps 11
// bits of an f32's 24. With s = 2^e chosen per row so that the row's largest |x·s| lies in
// [2^14, 2^15) (below f16's largest finite value, 65504, and far above its smallest normal, 2^-14):
//   hi = x·s to 11 bits,  lo = f16(x·s − hi),  x·s = hi + lo + r,  |r| ≤ 2^-22 · |x·s| (22 bits),
// except for elements 2^17 times smaller than the row's largest, whose lo is an f16 subnormal:
// their error is below 2^-25 of the row maximum. Multiplying by s and 1/s is exact (powers of
// two), so x·w = (hi·w + lo·w)/s, and hi·w, lo·w are exact products of f16 values in f32.
// f16() of Inf or NaN is indeterminate in WGSL, so a row holding either gets sc = NaN: its
// outputs are NaN, which the finite checks downstream report (never a hidden wrong value).
//
// Batch b of hl holds hi in elements b·2·RP·CP + [0, RP·CP) and lo in the next RP·CP; rows
// R..RP − 1 and columns C..CP − 1 are zeros (the GEMM's tiles and k steps are whole). sc[b·RP + r] = 1/s.
enable f16;

struct Params { r: u32, c: u32, rp: u32, cp: u32, x_off: u32, bs: u32, rs: u32, cs: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> hl: array<f16>;
@group(0) @binding(3) var<storage, read_write> sc: array<f32>;

const WG = 256u;
// f32's largest finite value stands for "this row holds Inf or NaN" in the max reduction (WGSL
// rejects a constant Inf; no finite row reaches it without overflowing its products anyway).
const BAD = 3.4028234663852886e38;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let m = wid.x;
  let b = wid.y;
  let row = m < p.r;
  let src = p.x_off + b * p.bs + m * p.rs;
  var mx = 0.0;
  if (row) {
    for (var k = t; k < p.c; k += WG) {
      let v = x[src + k * p.cs];
      // Inf or NaN (exponent field all ones) counts as BAD: max() may drop a NaN operand.
      let bad = (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
      mx = max(mx, select(abs(v), BAD, bad));
    }
  }
  red[t] = mx;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (t < h) { red[t] = max(red[t], red[t + h]); }
    workgroupBarrier();
  }
  let amax = red[0];
  // amax = 1.f · 2^ex (its biased exponent field, unbiased): scale by 2^(14 − ex). ldexp is
  // defined for exponents up to 127; −126 keeps 1/s normal.
  let biased = i32((bitcast<u32>(amax) >> 23u) & 0xffu);
  let finite = amax < BAD;
  var shift = 0;
  if (amax > 0.0 && finite) { shift = clamp(14 - (biased - 127), -126, 127); }
  let s = ldexp(1.0, shift);
  // A NaN made at run time (from a uniform): a constant NaN is rejected like a constant Inf.
  if (t == 0u) { sc[b * p.rp + m] = select(bitcast<f32>(0x7fc00000u | (p.r & 1u)), ldexp(1.0, -shift), finite); }
  let dst = b * 2u * p.rp * p.cp + m * p.cp;
  let lo_off = p.rp * p.cp;
  for (var k = t; k < p.cp; k += WG) {
    var v = 0.0;
    if (row && finite && k < p.c) { v = x[src + k * p.cs] * s; }
    // hi: v rounded to 11 significant bits (to nearest, ties to even) with integer operations,
    // which f16() then converts exactly. `v − f32(f16(v))` reads the same but a compiler may fold
    // it to 0 (Mesa's lavapipe does), losing lo.
    let bits = bitcast<u32>(v);
    let hi = bitcast<f32>((bits + 0xfffu + ((bits >> 13u) & 1u)) & 0xffffe000u);
    hl[dst + k] = f16(hi);
    hl[dst + lo_off + k] = f16(v - hi);
  }
}
