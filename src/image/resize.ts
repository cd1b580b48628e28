// Pillow's bicubic resampling (`Image.resize(size, Image.BICUBIC)`), reproduced exactly.
//
// The reference resizes with torchvision `Resize((448, 448), BICUBIC)` on a PIL image
// (/work/shared/upstream/visual.py:354-358), which calls PIL's `Image.resize`, which runs
// `ImagingResample` in Pillow's src/libImaging/Resample.c. Everything below follows that file:
//   - `bicubic_filter` with a = -0.5 and support 2.0 (Resample.c `bicubic_filter`, `BICUBIC`),
//   - `precompute_coeffs`: filterscale = max(scale, 1), support = 2 * filterscale, window bounds
//     rounded with `(int)(center ± support + 0.5)`, weights normalised by their sum in double,
//   - `normalize_coeffs_8bpc`: weights to fixed point with PRECISION_BITS = 32 - 8 - 2 = 22,
//     rounding half away from zero,
//   - the accumulator starts at 1 << (PRECISION_BITS - 1) and `clip8` clamps `acc >> 22` to 0..255,
//   - `ImagingResampleInner`: horizontal pass first (only over the source rows the vertical pass
//     will read), uint8 result, then the vertical pass; a pass whose size is unchanged is skipped.
// Upscaling takes the same path with scale < 1 (filterscale clamped to 1, so support stays 2).

/** Fixed-point fraction bits of the weights (Resample.c: `#define PRECISION_BITS (32 - 8 - 2)`). */
const PRECISION_BITS = 22;

/** Bicubic convolution kernel with a = -0.5 (Resample.c `bicubic_filter`). */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output index: first source index, tap count, and `ksize` fixed-point weights. */
export interface Coeffs {
  ksize: number;
  xmin: Int32Array;
  count: Int32Array;
  weights: Int32Array; // [outSize * ksize]
}

/** Resample.c `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for box [0, inSize). */
function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const BICUBIC_SUPPORT = 2.0; // Resample.c: `static struct filter BICUBIC = {bicubic_filter, 2.0}`
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const xmin = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C `(int)` truncates toward zero; the values can be negative before the clamp.
    let lo = Math.trunc(center - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(center + support + 0.5);
    if (hi > inSize) hi = inSize;
    const n = hi - lo;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      const w = bicubic((x + lo - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < n; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      // normalize_coeffs_8bpc: `(int)(±0.5 + w * (1 << PRECISION_BITS))`
      weights[xx * ksize + x] = w < 0
        ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    xmin[xx] = lo;
    count[xx] = n;
  }
  return { ksize, xmin, count, weights };
}

/** One resize's passes and coefficients, as ImagingResampleInner runs them (resamplePlan). */
export interface ResamplePlan {
  readonly hor: Coeffs | null;
  readonly vert: Coeffs | null;
  readonly yFirst: number;
  readonly rows: number;
}

/**
 * What `ImagingResampleInner` does for a w×h → outW×outH resize: the coefficients of each pass
 * that runs (null: that dimension is unchanged and the pass is skipped), and the source rows
 * [yFirst, yFirst + rows) the horizontal pass covers — only those the vertical pass reads
 * (Resample.c: `ybox_first = bounds_vert[0]`, `ybox_last = bounds_vert[ysize*2-2] + bounds_vert[ysize*2-1]`).
 * Shared by resizeBicubicPIL and the WebGPU backend's resize (src/ops/webgpu/image.ts).
 */
export function resamplePlan(w: number, h: number, outW: number, outH: number): ResamplePlan {
  for (const [name, v] of [["width", w], ["height", h], ["outW", outW], ["outH", outH]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`resizeBicubicPIL: ${name} must be a positive integer, got ${v}`);
  }
  // The vertical bounds decide the rows even when that pass is skipped (then they are all h rows).
  const vert = precomputeCoeffs(h, outH);
  const yFirst = vert.xmin[0];
  const yLast = vert.xmin[outH - 1] + vert.count[outH - 1];
  // ImagingResampleInner: a pass runs only when that dimension changes (the box is the full image).
  return {
    hor: outW !== w ? precomputeCoeffs(w, outW) : null,
    vert: outH !== h ? vert : null,
    yFirst,
    rows: yLast - yFirst,
  };
}

/** Resample.c `clip8`: the rounded accumulator shifted down and clamped to a byte. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resize an interleaved 8-bit image (HWC, `channels` per pixel, default RGB) to outW×outH with
 * Pillow's BICUBIC filter, bit-exact with `Image.resize((outW, outH), Image.BICUBIC)`.
 */
export function resizeBicubicPIL(
  src: Uint8Array, w: number, h: number, outW: number, outH: number, channels = 3,
): Uint8Array {
  const plan = resamplePlan(w, h, outW, outH);
  if (src.length !== w * h * channels) {
    throw new Error(`resizeBicubicPIL: buffer has ${src.length} bytes, expected ${w}x${h}x${channels} = ${w * h * channels}`);
  }
  const C = channels;
  const half = 1 << (PRECISION_BITS - 1);
  const { hor, vert, yFirst, rows } = plan;

  // Horizontal pass over the source rows [yFirst, yFirst + rows) that the vertical pass reads.
  let tmp = src;
  let tmpW = w;
  let rowOffset = 0; // index of tmp's first row in source coordinates
  if (hor) {
    tmp = new Uint8Array(outW * rows * C);
    for (let y = 0; y < rows; y++) {
      const srcRow = (y + yFirst) * w * C;
      const dstRow = y * outW * C;
      for (let xx = 0; xx < outW; xx++) {
        const n = hor.count[xx], kb = xx * hor.ksize;
        let p = srcRow + hor.xmin[xx] * C;
        if (C === 3) { // the common case, unrolled over channels
          let a0 = half, a1 = half, a2 = half;
          for (let x = 0; x < n; x++, p += 3) {
            const wgt = hor.weights[kb + x];
            a0 += src[p] * wgt; a1 += src[p + 1] * wgt; a2 += src[p + 2] * wgt;
          }
          const d = dstRow + xx * 3;
          tmp[d] = clip8(a0); tmp[d + 1] = clip8(a1); tmp[d + 2] = clip8(a2);
        } else {
          for (let c = 0; c < C; c++) {
            let a = half;
            for (let x = 0; x < n; x++) a += src[p + x * C + c] * hor.weights[kb + x];
            tmp[dstRow + xx * C + c] = clip8(a);
          }
        }
      }
    }
    tmpW = outW;
    rowOffset = yFirst;
  }
  if (!vert) return tmp === src ? src.slice() : tmp;

  const out = new Uint8Array(tmpW * outH * C);
  const rowLen = tmpW * C;
  // Row-at-a-time accumulation (integer sums, so the order does not change the result).
  const acc = new Int32Array(rowLen);
  for (let yy = 0; yy < outH; yy++) {
    const y0 = vert.xmin[yy] - rowOffset, n = vert.count[yy], kb = yy * vert.ksize;
    acc.fill(half);
    for (let y = 0; y < n; y++) {
      const wgt = vert.weights[kb + y];
      const r = (y0 + y) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += tmp[r + i] * wgt;
    }
    const dst = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[dst + i] = clip8(acc[i]);
  }
  return out;
}
