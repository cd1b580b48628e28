// Size guard shared by the decoders. Pillow refuses images above twice Image.MAX_IMAGE_PIXELS
// (src/PIL/Image.py: MAX_IMAGE_PIXELS = int(1024 * 1024 * 1024 // 4 // 3) = 89,478,485;
// `_decompression_bomb_check` raises DecompressionBombError above 2x that), so we refuse the same.
export const MAX_PIXELS = 2 * Math.floor((1024 * 1024 * 1024) / 4 / 3);

export function checkImageSize(width: number, height: number, name: string): void {
  if (width * height > MAX_PIXELS) {
    throw new Error(`${name}: image size ${width}x${height} (${width * height} pixels) exceeds the limit of ${MAX_PIXELS} pixels (Pillow's decompression-bomb limit)`);
  }
}
