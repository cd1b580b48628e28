// Backend.imagePixels on the GPU: Pillow's bicubic resize and the CLIP normalisation
// (resize_bicubic.wgsl), so that the host's share of an image is its decode and one upload of the
// RGB bytes. On the CPU the resize of a 2048 × 1365 photo to 448² costs ~45 ms of JavaScript
// (docs/images.md), as much as the JPEG decode; on the GPU it is a few dispatches.
//
// Exactness: the coefficient tables are resize.ts's own (`resamplePlan`: precompute_coeffs and
// normalize_coeffs_8bpc in double, fixed point in Int32), the passes run in i32 as Pillow's do,
// and the normalisation reads preprocess.ts's table. The plan also decides which passes run and
// which source rows the horizontal one covers, so the GPU takes the same path as resize.ts.
/// <reference types="@webgpu/types" />
import { resamplePlan, type Coeffs } from "../../image/resize.js";
import type { GpuContext, PooledBuffer } from "./context.js";

/** resize_bicubic.wgsl's `mode`. */
const MODE_HORIZONTAL = 0, MODE_VERTICAL = 1, MODE_COPY = 2;

/** One pass's tables in the shared coefficient buffer: [ksize, xmin offset, count offset, weights offset]. */
type TableAt = [number, number, number, number];

/** Both passes' tables in one Int32Array (at least one value: a binding may not be empty). */
function packTables(hor: Coeffs | null, vert: Coeffs | null): { data: Int32Array; hor: TableAt; vert: TableAt } {
  const parts = [hor, vert].flatMap((c) => (c ? [c.xmin, c.count, c.weights] : []));
  const data = new Int32Array(Math.max(1, parts.reduce((a, p) => a + p.length, 0)));
  let at = 0;
  const place = (c: Coeffs | null): TableAt => {
    if (!c) return [0, 0, 0, 0];
    const offs: TableAt = [c.ksize, 0, 0, 0];
    [c.xmin, c.count, c.weights].forEach((a, i) => {
      offs[i + 1] = at;
      data.set(a, at);
      at += a.length;
    });
    return offs;
  };
  return { data, hor: place(hor), vert: place(vert) };
}

/**
 * Encode the resize of `rgb` (w × h, interleaved RGB) to size × size and its normalisation into a
 * new buffer holding [3, size, size] f32 (offset 0). `lut` holds clipNormalizeTable(); `dummy`
 * is bound where no intermediate is needed. Throws, naming the limit, when the image or the
 * intermediate exceeds one storage binding.
 */
export function encodeImagePixels(
  ctx: GpuContext, lut: GPUBuffer, dummy: PooledBuffer, rgb: Uint8Array, w: number, h: number, size: number,
): PooledBuffer {
  const limit = `this device's storage binding limit of ${ctx.maxBinding} bytes (maxStorageBufferBindingSize)`;
  if (rgb.byteLength > ctx.maxBinding) {
    throw new Error(`imagePixels: the decoded ${w}×${h} image (${rgb.byteLength} bytes of RGB) exceeds ${limit}; ` +
      `downscale it before handing it over, or use a CPU backend`);
  }
  const plan = resamplePlan(w, h, size, size);
  const both = plan.hor !== null && plan.vert !== null;
  // The horizontal pass's result, one pixel per word: needed only when the vertical pass follows.
  const tmpBytes = both ? size * plan.rows * 4 : 0;
  if (tmpBytes > ctx.maxBinding) {
    throw new Error(`imagePixels: the ${w}×${h} image's intermediate of ${size}×${plan.rows} pixels (${tmpBytes} bytes) exceeds ${limit}; ` +
      `downscale it before handing it over, or use a CPU backend`);
  }
  const tables = packTables(plan.hor, plan.vert);
  const src = ctx.uploadBytes(rgb);
  const coef = ctx.upload(tables.data);
  const tmp = both ? ctx.take(tmpBytes) : dummy;
  const out = ctx.take(3 * size * size * 4);
  const pass = (mode: number, fromTmp: boolean, toOut: boolean, inW: number, outH: number, row0: number, t: TableAt): void => {
    const [ksize, xminOff, countOff, wOff] = t;
    ctx.dispatch("resize_bicubic", [mode, fromTmp ? 1 : 0, toOut ? 1 : 0, inW, size, outH, row0, ksize, xminOff, countOff, wOff], 0,
      [src, coef, lut, tmp, out], ctx.grid(size * outH, 256));
  };
  // ImagingResampleInner: horizontal first, over the rows [yFirst, yFirst + rows) only.
  if (plan.hor) pass(MODE_HORIZONTAL, false, !plan.vert, w, plan.rows, plan.yFirst, tables.hor);
  // Its input (size wide: tmp, or the source when that is already size wide) starts at source
  // row yFirst after a horizontal pass (Resample.c shifts bounds_vert by ybox_first), else at 0.
  if (plan.vert) pass(MODE_VERTICAL, both, true, size, size, plan.hor ? plan.yFirst : 0, tables.vert);
  if (!plan.hor && !plan.vert) pass(MODE_COPY, false, true, w, size, 0, tables.vert);
  ctx.give(src);
  ctx.give(coef);
  if (tmp !== dummy) ctx.give(tmp);
  return out;
}
