// PyTorch's bicubic `F.interpolate(mode="bicubic", align_corners=False)` on CPU, float32, reproduced
// operation by operation.
//
// Qwen-VL resizes its learned 16×16 positional table to the 32×32 patch grid with it
// (visual.py:23-38 `get_abs_pos`, called at visual.py:415 and visual.py:134). This is NOT the
// bicubic the image goes through: pixels are resized by Pillow (a = −0.5, antialiased, 8-bit fixed
// point; see src/image/resize.ts). Torch's non-antialiased cubic uses a = −0.75 (OpenCV's choice).
//
// Source (pytorch/pytorch, aten/src/ATen/native/):
//   UpSample.h  `compute_scales_value`: scale = (float)input_size / output_size (no scale_factor given)
//               `area_pixel_compute_source_index` (cubic=true): src = scale·(dst + 0.5) − 0.5, and a
//                   negative src is kept (not clamped to 0) so the weights stay right at the border
//               `guard_index_and_lambda`: index = min(floor(src), input_size − 1),
//                   lambda = clamp(src − index, 0, 1)
//               `cubic_convolution1/2` and `get_cubic_upsample_coefficients` with A = −0.75
//   cpu/UpSampleKernel.cpp  `upsample_bicubic2d_kernel_impl` → `upsample_generic_Nd_kernel_impl`
//               with `HelperInterpCubic::compute_indices_weights` (tap j reads
//               clamp(index − 1 + j, 0, size − 1): edge replication) and the `Interpolate<n>`
//               recursion: out = Σ_j wy[j]·(Σ_i wx[i]·src[y_j, x_i]), height outer, width inner,
//               accumulated left to right in float (opmath_type<float> is float).
// Every float op below is rounded to f32 (`Math.fround`) the way the C++ evaluates it in float.

const f = Math.fround;

/** Bicubic convolution constant of torch's non-antialiased kernel (UpSample.h `get_cubic_upsample_coefficients`). */
const A = f(-0.75);

/** UpSample.h `cubic_convolution1`: |x| ≤ 1 branch, ((A + 2)·x − (A + 3))·x·x + 1, in float. */
function cubicConvolution1(x: number): number {
  return f(f(f(f(f(f(A + 2) * x) - f(A + 3)) * x) * x) + 1);
}

/** UpSample.h `cubic_convolution2`: 1 < |x| < 2 branch, ((A·x − 5A)·x + 8A)·x − 4A, in float. */
function cubicConvolution2(x: number): number {
  return f(f(f(f(f(f(A * x) - f(5 * A)) * x) + f(8 * A)) * x) - f(4 * A));
}

/** The four tap weights for fractional offset t ∈ [0, 1] (UpSample.h `get_cubic_upsample_coefficients`). */
export function cubicCoefficients(t: number): [number, number, number, number] {
  const x1 = f(t);
  const x2 = f(1.0 - x1);
  return [cubicConvolution2(f(x1 + 1.0)), cubicConvolution1(x1), cubicConvolution1(x2), cubicConvolution2(f(x2 + 1.0))];
}

/** Source taps (already clamped to the edge) and weights for each output index along one axis. */
interface AxisTaps {
  readonly index: Int32Array; // [outSize * 4]
  readonly weight: Float32Array; // [outSize * 4]
}

/** cpu/UpSampleKernel.cpp `HelperInterpCubic::compute_indices_weights`, align_corners = false. */
function axisTaps(inSize: number, outSize: number): AxisTaps {
  // area_pixel_compute_scale → compute_scales_value: float(input_size) / output_size; 0 when out is 1.
  const scale = outSize > 1 ? f(inSize / outSize) : 0;
  const index = new Int32Array(outSize * 4);
  const weight = new Float32Array(outSize * 4);
  for (let i = 0; i < outSize; i++) {
    // area_pixel_compute_source_index: `scale * (dst_index + 0.5) - 0.5` in double, stored as float.
    const real = f(scale * (i + 0.5) - 0.5);
    // guard_index_and_lambda: only the upper bound is guarded; floor(−0.25) = −1 stays −1.
    const i0 = Math.min(Math.floor(real), inSize - 1);
    const lambda = Math.min(Math.max(f(real - i0), 0), 1);
    const c = cubicCoefficients(lambda);
    for (let j = 0; j < 4; j++) {
      index[i * 4 + j] = Math.max(Math.min(i0 - 1 + j, inSize - 1), 0);
      weight[i * 4 + j] = c[j];
    }
  }
  return { index, weight };
}

/**
 * Resize a position-major grid `src` [inH, inW, C] to [outH, outW, C] exactly like
 * `F.interpolate(x.permute(0, 3, 1, 2), size=(outH, outW), mode="bicubic", align_corners=False)`
 * on a float32 CPU tensor (channels are independent, so the memory layout does not change the math).
 */
export function bicubicResizeTorch(
  src: Float32Array, inH: number, inW: number, channels: number, outH: number, outW: number,
): Float32Array {
  for (const [name, v] of [["inH", inH], ["inW", inW], ["channels", channels], ["outH", outH], ["outW", outW]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`bicubicResizeTorch: ${name} must be a positive integer, got ${v}`);
  }
  if (src.length !== inH * inW * channels) {
    throw new Error(`bicubicResizeTorch: source has ${src.length} values, expected ${inH}×${inW}×${channels}`);
  }
  const C = channels;
  // UpSampleBicubic2d: same size is a copy (the kernel's weights would be [0, 1, 0, 0] anyway).
  if (inH === outH && inW === outW) return src.slice();
  const ty = axisTaps(inH, outH);
  const tx = axisTaps(inW, outW);
  const out = new Float32Array(outH * outW * C);
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      const dst = (oy * outW + ox) * C;
      for (let c = 0; c < C; c++) {
        // Interpolate<2>: outer sum over the 4 rows, each an Interpolate<1> sum over 4 columns.
        let acc = 0;
        for (let j = 0; j < 4; j++) {
          const row = ty.index[oy * 4 + j] * inW;
          let inner = 0;
          for (let i = 0; i < 4; i++) {
            const v = src[(row + tx.index[ox * 4 + i]) * C + c];
            const p = f(v * tx.weight[ox * 4 + i]);
            inner = i === 0 ? p : f(inner + p);
          }
          const p = f(inner * ty.weight[oy * 4 + j]);
          acc = j === 0 ? p : f(acc + p);
        }
        out[dst + c] = acc;
      }
    }
  }
  return out;
}

/**
 * visual.py:23-38 `get_abs_pos`: a square table [L, C] resized to cover `tgtLen` positions
 * (both side lengths are `int(sqrt(·))`), or returned unchanged when the sizes agree.
 */
export function getAbsPos(table: Float32Array, rows: number, channels: number, tgtLen: number): Float32Array {
  const srcSize = Math.floor(Math.sqrt(rows));
  const tgtSize = Math.floor(Math.sqrt(tgtLen));
  if (srcSize * srcSize !== rows) throw new Error(`getAbsPos: table has ${rows} rows, not a square grid`);
  if (tgtSize * tgtSize !== tgtLen) throw new Error(`getAbsPos: target ${tgtLen} is not a square grid`);
  if (table.length !== rows * channels) throw new Error(`getAbsPos: table has ${table.length} values, expected ${rows}×${channels}`);
  if (srcSize === tgtSize) return table;
  return bicubicResizeTorch(table, srcSize, srcSize, channels, tgtSize, tgtSize);
}
