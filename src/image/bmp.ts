// Windows BMP → RGB as Pillow's BmpImagePlugin + convert("RGB"). Uncompressed 1/4/8-bit palette,
// 24-bit BGR and 32-bit BGRX/bitfields with byte-aligned masks; RLE and 16-bit are refused with a
// clear error. Rows are stored bottom-up unless the height is negative, each padded to 4 bytes
// (Microsoft BITMAPINFOHEADER documentation).
import type { DecodedRGB } from "./png.js";
import { MAX_PIXELS, checkImageSize } from "./limits.js";

export function isBmp(b: Uint8Array): boolean {
  return b.length >= 26 && b[0] === 0x42 && b[1] === 0x4d;
}

export function decodeBmp(b: Uint8Array, name = "image", maxPixels = MAX_PIXELS): DecodedRGB {
  const fail = (msg: string): never => { throw new Error(`${name}: ${msg}`); };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 26) fail("BMP truncated in its header");
  const dataOff = dv.getUint32(10, true), hdr = dv.getUint32(14, true);
  if (hdr < 40) fail(`unsupported BMP header size ${hdr} (OS/2 bitmaps are not supported)`);
  if (b.length < 14 + hdr) fail("BMP truncated in its info header");
  const width = dv.getInt32(18, true), rawH = dv.getInt32(22, true);
  const bpp = dv.getUint16(28, true), comp = dv.getUint32(30, true);
  const height = Math.abs(rawH), topDown = rawH < 0;
  if (width <= 0 || height === 0) fail(`BMP has invalid size ${width}x${rawH}`);
  checkImageSize(width, height, name, maxPixels);
  let masks: number[] | undefined;
  if (comp === 3 || comp === 6) { // BI_BITFIELDS: masks follow a 40-byte header, or live inside a larger one
    if (b.length < 66) fail("BMP truncated in its bitfield masks");
    masks = [0, 1, 2].map((i) => dv.getUint32(54 + 4 * i, true));
  } else if (comp !== 0) fail(`unsupported BMP compression ${comp} (RLE/JPEG/PNG inside BMP)`);
  if (![1, 4, 8, 24, 32].includes(bpp)) fail(`unsupported BMP bit depth ${bpp}`);
  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const colors = dv.getUint32(46, true) || 1 << bpp;
    const palOff = 14 + hdr;
    palette = b.subarray(palOff, Math.min(palOff + colors * 4, b.length));
  }
  const stride = Math.floor((width * bpp + 31) / 32) * 4;
  if (dataOff + stride * height > b.length) fail(`BMP truncated: pixel data needs ${stride * height} bytes at byte ${dataOff}, file has ${b.length}`);
  const shiftOf = (m: number): number => { let s = 0; while (s < 32 && !((m >>> s) & 1)) s++; return s; };
  if (masks && masks.some((m) => m !== 0 && ((m >>> shiftOf(m)) !== 0xff))) fail("unsupported BMP bitfield masks (only 8-bit channels)");
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = dataOff + (topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const d = (y * width + x) * 3;
      if (bpp <= 8) {
        const bit = x * bpp;
        const i = (b[row + (bit >> 3)] >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        if (i * 4 + 2 < palette!.length) { rgb[d] = palette![i * 4 + 2]; rgb[d + 1] = palette![i * 4 + 1]; rgb[d + 2] = palette![i * 4]; }
      } else if (bpp === 24 || !masks) {
        const s = row + x * (bpp >> 3);
        rgb[d] = b[s + 2]; rgb[d + 1] = b[s + 1]; rgb[d + 2] = b[s];
      } else {
        const v = dv.getUint32(row + x * 4, true);
        for (let c = 0; c < 3; c++) rgb[d + c] = (v & masks[c]) >>> shiftOf(masks[c]);
      }
    }
  }
  return { width, height, rgb };
}
