// The reference's image transform (/work/shared/upstream/visual.py:352-361, used by encode() at
// :416-425): convert("RGB") → Resize((S, S), BICUBIC) → ToTensor → Normalize(CLIP mean, std).
import { loadImage } from "./decode.js";
import { resizeBicubicPIL } from "./resize.js";

/** OpenAI CLIP normalisation constants (visual.py:352-353). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface PreprocessOptions {
  /** Square side the model expects (config visual.image_size; 448 for Qwen-VL). */
  imageSize?: number;
  /** See LoadImageOptions.applyExifOrientation; default false like the reference. */
  applyExifOrientation?: boolean;
  /** Name used in error messages. */
  name?: string;
  /** See LoadImageOptions.maxMegapixels (default 178.96, Pillow's limit). */
  maxMegapixels?: number;
}

let clipTable: Float32Array | null = null;

/**
 * ToTensor + Normalize of one byte value v of channel c, as torchvision computes it: ToTensor
 * divides by 255 in float32, Normalize subtracts the float32 mean and divides by the float32 std
 * (tensor.sub_(mean).div_(std)), each step rounded to float32. One value per byte, so a table of
 * 3 × 256 entries (channel-major: [c·256 + v]) is both exact and fast; the WebGPU backend uploads
 * the same table (src/ops/webgpu/image.ts). Made once; callers must not modify it.
 */
export function clipNormalizeTable(): Float32Array {
  if (clipTable) return clipTable;
  const f = Math.fround;
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = f(CLIP_MEAN[c]), std = f(CLIP_STD[c]);
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = f(f(f(v / 255) - mean) / std);
  }
  clipTable = lut;
  return lut;
}

/** HWC uint8 → CHW float32 through clipNormalizeTable (ToTensor + Normalize, visual.py:359-360). */
export function normalizeCLIP(pixelsU8: Uint8Array, size: number): Float32Array {
  const n = size * size;
  if (pixelsU8.length !== n * 3) throw new Error(`normalizeCLIP: expected ${n * 3} bytes for ${size}x${size} RGB, got ${pixelsU8.length}`);
  const out = new Float32Array(3 * n);
  const lut = clipNormalizeTable();
  for (let c = 0; c < 3; c++) {
    const base = c * 256;
    for (let i = 0; i < n; i++) out[c * n + i] = lut[base + pixelsU8[i * 3 + c]];
  }
  return out;
}

/** Image file bytes → the reference's `pixels_u8` [S,S,3] and model input `pixels` [3,S,S]. */
export async function preprocessImage(
  bytes: Uint8Array, opts: PreprocessOptions = {},
): Promise<{ pixelsU8: Uint8Array; pixels: Float32Array }> {
  const size = opts.imageSize ?? 448;
  if (!Number.isInteger(size) || size < 1) throw new Error(`preprocessImage: imageSize must be a positive integer, got ${size}`);
  const img = await loadImage(bytes, {
    name: opts.name, applyExifOrientation: opts.applyExifOrientation ?? false, maxMegapixels: opts.maxMegapixels,
  });
  const pixelsU8 = resizeBicubicPIL(img.rgb, img.width, img.height, size, size);
  return { pixelsU8, pixels: normalizeCLIP(pixelsU8, size) };
}

// The whole image API from one module.
export { loadImage, sniffFormat } from "./decode.js";
export type { LoadImageOptions, RGBImage, ImageFormat } from "./decode.js";
export { resizeBicubicPIL } from "./resize.js";
export { DEFAULT_MAX_MEGAPIXELS, MAX_PIXELS } from "./limits.js";
