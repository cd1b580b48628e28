// Size guard shared by the decoders: every decoder reads the declared width × height from the
// header and calls checkImageSize before it allocates anything that grows with the image, so a
// small file that declares a huge image (a decompression bomb) is refused at once.
//
// The default is Pillow's: it refuses images above twice Image.MAX_IMAGE_PIXELS
// (src/PIL/Image.py: MAX_IMAGE_PIXELS = int(1024 * 1024 * 1024 // 4 // 3) = 89,478,485;
// `_decompression_bomb_check` raises DecompressionBombError above 2x that), so by default we accept
// exactly what the reference accepts. A service taking images from strangers should set a lower
// limit (`maxMegapixels` of loadImage / preprocessImage / QwenVL.encodeImage): decoding costs
// about 3 bytes per pixel for the RGB result plus up to 8 bytes per pixel of decoder buffers.
export const MAX_PIXELS = 2 * Math.floor((1024 * 1024 * 1024) / 4 / 3);
/** MAX_PIXELS in megapixels (178.96). */
export const DEFAULT_MAX_MEGAPIXELS = MAX_PIXELS / 1e6;

/** `maxMegapixels` → a pixel count, validated (undefined → the default). */
export function maxPixelsOf(maxMegapixels: number | undefined, name = "image"): number {
  if (maxMegapixels === undefined) return MAX_PIXELS;
  if (typeof maxMegapixels !== "number" || !(maxMegapixels > 0) || !Number.isFinite(maxMegapixels)) {
    throw new Error(`${name}: maxMegapixels must be a positive finite number, got ${String(maxMegapixels)}`);
  }
  return Math.floor(maxMegapixels * 1e6);
}

export function checkImageSize(width: number, height: number, name: string, maxPixels = MAX_PIXELS): void {
  if (width * height > maxPixels) {
    const why = maxPixels === MAX_PIXELS ? "Pillow's decompression-bomb limit" : `maxMegapixels ${maxPixels / 1e6}`;
    throw new Error(`${name}: image size ${width}x${height} (${width * height} pixels) exceeds the limit of ${maxPixels} pixels (${why})`);
  }
}
