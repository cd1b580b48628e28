// Pillow's BICUBIC resize of 8-bit RGB with the CLIP normalisation after it: the reference's
// Resize + ToTensor + Normalize (/work/shared/upstream/visual.py:354-360), bit for bit as
// src/image/resize.ts and preprocess.ts normalizeCLIP compute it. One invocation per output pixel
// of one pass; image.ts dispatches the passes as Pillow's ImagingResampleInner runs them
// (src/libImaging/Resample.c): the horizontal pass over only the source rows the vertical pass
// reads, into one byte per channel, then the vertical pass; a pass whose size is unchanged is
// skipped (mode 2: neither runs). The last pass writes the normalised f32 values, CHW.
//
// Pixels: `src` holds the decoded RGB bytes as uploaded, 4 per word (byte i in bits 8·(i % 4)
// of word i / 4: WGSL has no 8-bit type); `tmp` holds the horizontal pass's result, one pixel
// per word (r | g << 8 | b << 16). The coefficient tables (xmin, count, ksize weights per output
// index, Resample.c precompute_coeffs + normalize_coeffs_8bpc) are computed on the host in
// double, exactly as resize.ts does, and read here at the given offsets of `coef`.
struct Params {
  mode: u32,       // 0 horizontal pass, 1 vertical pass, 2 no pass (the size is unchanged)
  from_tmp: u32,   // the input: 1 tmp (after the horizontal pass), 0 src
  to_out: u32,     // 1: write the normalised values into o; 0: pixel words into tmp
  in_w: u32,       // the input's row width in pixels
  out_w: u32,
  out_h: u32,
  // horizontal: the first source row read (ybox_first); vertical: the source row of the input's
  // first row (ybox_first after a horizontal pass, else 0: Resample.c shifts bounds_vert by it)
  row0: u32,
  ksize: u32,
  xmin_off: u32,   // offsets of the pass's tables in coef
  count_off: u32,
  w_off: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> coef: array<i32>;
// clipNormalizeTable (preprocess.ts): lut[c·256 + v] = ((v / 255 − mean[c]) / std[c]) in f32.
@group(0) @binding(3) var<storage, read> lut: array<f32>;
@group(0) @binding(4) var<storage, read_write> tmp: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;

// Resample.c: #define PRECISION_BITS (32 - 8 - 2)
const PRECISION_BITS = 22u;

fn src_byte(i: u32) -> i32 {
  return i32((src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu);
}

// Pixel (x, y) of the pass's input.
fn input_pixel(x: u32, y: u32) -> vec3<i32> {
  let i = y * p.in_w + x;
  if (p.from_tmp == 1u) {
    let w = tmp[i];
    return vec3<i32>(i32(w & 0xffu), i32((w >> 8u) & 0xffu), i32((w >> 16u) & 0xffu));
  }
  return vec3<i32>(src_byte(3u * i), src_byte(3u * i + 1u), src_byte(3u * i + 2u));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_index(gid, nwg, 256u);
  let n_out = p.out_w * p.out_h;
  if (e >= n_out) { return; }
  let x = e % p.out_w;
  let y = e / p.out_w;
  var v: vec3<i32>;
  if (p.mode == 2u) {
    v = input_pixel(x, y);
  } else {
    // ImagingResampleHorizontal_8bpc / ImagingResampleVertical_8bpc: ss = 1 << (PRECISION_BITS - 1)
    // (the rounding), then the sum of pixel · weight in int32 (Pillow's accumulator type; the
    // sums fit: Σ |weight| < 2 · 2^22, times at most 255), then clip8.
    let o_idx = select(y, x, p.mode == 0u);
    let xmin = u32(coef[p.xmin_off + o_idx]);
    let n = u32(coef[p.count_off + o_idx]);
    let kb = p.w_off + o_idx * p.ksize;
    var acc = vec3<i32>(1i << (PRECISION_BITS - 1u));
    for (var t = 0u; t < n; t++) {
      let wgt = coef[kb + t];
      if (p.mode == 0u) {
        acc += input_pixel(xmin + t, y + p.row0) * wgt;
      } else {
        acc += input_pixel(x, xmin + t - p.row0) * wgt;
      }
    }
    // clip8: the accumulator shifted down (arithmetic shift, as C's >> of an int) into 0..255.
    v = clamp(acc >> vec3<u32>(PRECISION_BITS), vec3<i32>(0), vec3<i32>(255));
  }
  if (p.to_out == 1u) {
    o[e] = lut[v.x];
    o[n_out + e] = lut[256 + v.y];
    o[2u * n_out + e] = lut[512 + v.z];
  } else {
    tmp[e] = u32(v.x) | (u32(v.y) << 8u) | (u32(v.z) << 16u);
  }
}
