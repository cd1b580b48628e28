// EXIF orientation: reading the tag and applying it the way Pillow's ImageOps.exif_transpose does.
// The reference never applies it (visual.py:422-423 only opens and converts), so this runs only
// when asked for.
//
// Orientation values (EXIF 2.32 / TIFF tag 0x0112) → Pillow transpose method (ImageOps.py
// `exif_transpose`): 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE,
// 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90 (Pillow's ROTATE_* turn counter-clockwise).

/** The orientation tag (1..8) from a TIFF-structured EXIF block, or 1 when absent/unreadable. */
export function exifOrientation(tiff: Uint8Array | undefined): number {
  if (!tiff || tiff.length < 8) return 1;
  const le = tiff[0] === 0x49 && tiff[1] === 0x49;
  const be = tiff[0] === 0x4d && tiff[1] === 0x4d;
  if (!le && !be) return 1;
  const dv = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const u16 = (o: number): number => dv.getUint16(o, le);
  const ifd = dv.getUint32(4, le);
  if (ifd + 2 > tiff.length) return 1;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    if (e + 12 > tiff.length) return 1;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8); // SHORT value stored left-justified in the 4-byte value field
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/** Apply an EXIF orientation to an interleaved RGB image; returns the (possibly swapped) size. */
export function applyOrientation(
  rgb: Uint8Array, w: number, h: number, orientation: number,
): { width: number; height: number; rgb: Uint8Array } {
  if (orientation <= 1 || orientation > 8) return { width: w, height: h, rgb };
  const swap = orientation >= 5;
  const ow = swap ? h : w, oh = swap ? w : h;
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number, sy: number;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break;          // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;  // ROTATE_180
        case 4: sx = x; sy = h - 1 - y; break;          // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                  // TRANSPOSE
        case 6: sx = y; sy = h - 1 - x; break;          // ROTATE_270 (clockwise quarter turn)
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;  // TRANSVERSE
        default: sx = w - 1 - y; sy = x; break;         // 8: ROTATE_90 (counter-clockwise)
      }
      const s = (sy * w + sx) * 3, d = (y * ow + x) * 3;
      out[d] = rgb[s]; out[d + 1] = rgb[s + 1]; out[d + 2] = rgb[s + 2];
    }
  }
  return { width: ow, height: oh, rgb: out };
}
