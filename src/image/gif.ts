// GIF (87a/89a) first frame → RGB as Pillow 9.x gives it. Format: the GIF89a specification
// (LZW with variable code size, sec. 22 and Appendix F; interlaced rows, Appendix E).
// Pillow (GifImagePlugin.py `load_prepare`) starts the first frame from a canvas filled with the
// frame's transparency index, or 0, then draws the frame into its rectangle; convert("RGB") looks
// each index up in the frame's palette (local table if present, else global), ignoring transparency.
import type { DecodedRGB } from "./png.js";
import { MAX_PIXELS, checkImageSize } from "./limits.js";

export function isGif(b: Uint8Array): boolean {
  return b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38 && (b[4] === 0x37 || b[4] === 0x39) && b[5] === 0x61;
}

export function decodeGif(b: Uint8Array, name = "image", maxPixels = MAX_PIXELS): DecodedRGB {
  const fail = (msg: string): never => { throw new Error(`${name}: ${msg}`); };
  if (!isGif(b)) fail("not a GIF file");
  if (b.length < 13) fail("GIF truncated in its header");
  const u16 = (o: number): number => b[o] | (b[o + 1] << 8);
  const width = u16(6), height = u16(8);
  if (width === 0 || height === 0) fail(`GIF has empty size ${width}x${height}`);
  checkImageSize(width, height, name, maxPixels);
  let p = 13;
  let palette: Uint8Array | undefined;
  if (b[10] & 0x80) { const n = 3 << ((b[10] & 7) + 1); palette = b.subarray(p, p + n); p += n; }
  let transparency = -1;
  for (;;) {
    if (p >= b.length) fail("GIF truncated: no image found");
    const intro = b[p++];
    if (intro === 0x3b) fail("GIF has no image");
    if (intro === 0x21) { // extension: graphic control (0xF9) carries the transparency index
      const label = b[p++];
      if (label === 0xf9 && b[p] >= 4 && (b[p + 1] & 1)) transparency = b[p + 4];
      while (p < b.length && b[p] !== 0) p += b[p] + 1;
      p++;
      continue;
    }
    if (intro !== 0x2c) fail(`GIF has an invalid block type 0x${intro.toString(16)} at byte ${p - 1}`);
    if (p + 9 > b.length) fail("GIF truncated in an image descriptor");
    const fx = u16(p), fy = u16(p + 2), fw = u16(p + 4), fh = u16(p + 6), flags = b[p + 8];
    p += 9;
    // The frame rectangle is decoded in full before it is clipped to the screen: bound it too.
    if (fw === 0 || fh === 0) fail(`GIF frame has empty size ${fw}x${fh}`);
    checkImageSize(fw, fh, name, maxPixels);
    if (flags & 0x80) { const n = 3 << ((flags & 7) + 1); palette = b.subarray(p, p + n); p += n; }
    const minCode = b[p++];
    if (minCode < 1 || minCode > 11) fail(`GIF has an invalid LZW code size ${minCode}`);
    // Gather the data sub-blocks.
    const parts: Uint8Array[] = [];
    let ended = false;
    while (p < b.length) {
      const n = b[p++];
      if (n === 0) { ended = true; break; }
      if (p + n > b.length) break;
      parts.push(b.subarray(p, p + n)); p += n;
    }
    if (!ended) fail("GIF truncated inside image data");
    const data = new Uint8Array(parts.reduce((s, x) => s + x.length, 0));
    let o = 0; for (const x of parts) { data.set(x, o); o += x.length; }
    const idx = lzw(data, minCode, fw * fh);
    const canvas = new Uint8Array(width * height).fill(transparency >= 0 ? transparency : 0);
    const interlaced = (flags & 0x40) !== 0;
    const rows: number[] = [];
    if (interlaced) { for (const [s, st] of [[0, 8], [4, 8], [2, 4], [1, 2]]) for (let y = s; y < fh; y += st) rows.push(y); }
    else for (let y = 0; y < fh; y++) rows.push(y);
    rows.forEach((y, i) => {
      const cy = fy + y;
      if (cy >= height) return;
      for (let x = 0; x < fw && fx + x < width; x++) canvas[cy * width + fx + x] = idx[i * fw + x];
    });
    const rgb = new Uint8Array(width * height * 3);
    const pal = palette ?? new Uint8Array(0);
    for (let i = 0; i < width * height; i++) {
      const k = canvas[i] * 3;
      if (k + 2 < pal.length) { rgb[3 * i] = pal[k]; rgb[3 * i + 1] = pal[k + 1]; rgb[3 * i + 2] = pal[k + 2]; }
    }
    return { width, height, rgb };
  }
}

/** GIF LZW decoder; stops at the end code or after `count` pixels. Missing pixels stay 0. */
function lzw(data: Uint8Array, minCode: number, count: number): Uint8Array {
  const out = new Uint8Array(count);
  const clear = 1 << minCode, eoi = clear + 1;
  // Dictionary entry = (prefix entry, last byte); `first` and `length` make emitting cheap.
  const prefix = new Int32Array(4096), suffix = new Uint8Array(4096), first = new Uint8Array(4096), length = new Int32Array(4096);
  for (let i = 0; i < clear; i++) { suffix[i] = i; first[i] = i; length[i] = 1; prefix[i] = -1; }
  let size = minCode + 1, next = eoi + 1, prev = -1;
  let acc = 0, nb = 0, bp = 0, op = 0;
  const emit = (code: number): void => {
    let c = code;
    for (let i = length[code] - 1; i >= 0; i--) { if (op + i < count) out[op + i] = suffix[c]; c = prefix[c]; }
    op += length[code];
  };
  const add = (p: number, byte: number): void => {
    if (next >= 4096) return; // table full: GIF encoders send a clear code; keep decoding with it as is
    prefix[next] = p; suffix[next] = byte; first[next] = first[p]; length[next] = length[p] + 1; next++;
  };
  while (op < count) {
    while (nb < size && bp < data.length) { acc |= data[bp++] << nb; nb += 8; }
    if (nb < size) break;
    const code = acc & ((1 << size) - 1);
    acc >>>= size; nb -= size;
    if (code === clear) { size = minCode + 1; next = eoi + 1; prev = -1; continue; }
    if (code === eoi) break;
    if (prev < 0) { if (code >= clear) break; emit(code); prev = code; continue; }
    if (code < next) { add(prev, first[code]); emit(code); }
    else if (code === next) { add(prev, first[prev]); emit(code); } // KwKwK: prev + its own first byte
    else break; // corrupt code
    if (next === 1 << size && size < 12) size++;
    prev = code;
  }
  return out;
}
