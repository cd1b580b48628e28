// PNG decoder producing what Pillow gives after `Image.open(path).convert("RGB")`.
//
// Format: PNG specification (W3C, 2nd/3rd edition): chunks, filters (sec. 9), Adam7 interlace
// (sec. 8.2). Pillow's mapping of each (bit depth, colour type) to a mode and raw unpacker is in
// src/PIL/PngImagePlugin.py `_MODES`; the conversions to RGB are in src/libImaging/Unpack.c and
// Convert.c. The cases that matter for exact pixels:
//   - 16-bit RGB / RGBA / gray+alpha ("RGB;16B", "RGBA;16B", "LA;16B") keep the HIGH byte.
//   - 16-bit gray opens as mode "I" (Pillow 9/10) or "I;16" (Pillow 11); both convert to RGB by
//     CLAMPING the 16-bit value to 255 (Convert.c `i2rgb` / `I16_RGB`), not by taking the high byte.
//   - 1/2/4-bit gray scale to 0..255 (Unpack.c `unpackL2`/`unpackL4`: ×85, ×17; mode "1": ×255).
//   - palette: indices into PLTE; tRNS only affects alpha, which convert("RGB") drops. An index past
//     the palette end (invalid per the spec) reads black as in current Pillow, whose palette starts
//     zeroed (Palette.c `ImagingPaletteNew` uses calloc); Pillow 9.4 pre-filled a grey ramp instead.
//   - alpha channels are dropped; gAMA/cHRM/iCCP/sRGB are ignored by Pillow and here too.
import { inflateZlib } from "./inflate.js";
import { MAX_PIXELS, checkImageSize } from "./limits.js";

export interface DecodedRGB {
  width: number;
  height: number;
  /** Interleaved RGB, row-major (HWC). */
  rgb: Uint8Array;
  /** Raw EXIF (TIFF header onward) from an eXIf chunk, when present. */
  exif?: Uint8Array;
}

/** Bytes past the image's scanlines that inflating still accepts (Pillow ignores trailing data). */
const INFLATE_SLACK = 1 << 20;

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && SIGNATURE.every((v, i) => b[i] === v);
}

let crcTable: Uint32Array | undefined;
function crc32(b: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; // PNG spec Annex D
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Channels per pixel for each colour type (PNG spec table 11.1). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ALLOWED_DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16],
};

// Adam7 passes: x start, y start, x step, y step (PNG spec sec. 8.2).
const ADAM7 = [
  [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
];

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Undo the per-scanline filters (PNG spec sec. 9) of one (sub)image; returns the raw scanlines. */
function unfilter(data: Uint8Array, pos: number, h: number, bpp: number, rowBytes: number, name: string): Uint8Array {
  const out = new Uint8Array(rowBytes * h);
  const zero = new Uint8Array(rowBytes);
  for (let y = 0; y < h; y++) {
    const ft = data[pos++];
    const cur = out.subarray(y * rowBytes, (y + 1) * rowBytes);
    const up = y > 0 ? out.subarray((y - 1) * rowBytes, y * rowBytes) : zero;
    const line = data.subarray(pos, pos + rowBytes);
    switch (ft) {
      case 0: cur.set(line); break;
      case 1: for (let i = 0; i < rowBytes; i++) cur[i] = line[i] + (i >= bpp ? cur[i - bpp] : 0); break;
      case 2: for (let i = 0; i < rowBytes; i++) cur[i] = line[i] + up[i]; break;
      case 3: for (let i = 0; i < rowBytes; i++) cur[i] = line[i] + (((i >= bpp ? cur[i - bpp] : 0) + up[i]) >> 1); break;
      case 4:
        for (let i = 0; i < rowBytes; i++) {
          cur[i] = line[i] + (i >= bpp ? paeth(cur[i - bpp], up[i], up[i - bpp]) : up[i]); // paeth(0, b, 0) = b
        }
        break;
      default: throw new Error(`${name}: PNG scanline ${y} has invalid filter type ${ft} (corrupt image data)`);
    }
    pos += rowBytes;
  }
  return out;
}

/** Decode a PNG file into 8-bit RGB with Pillow's `convert("RGB")` semantics. */
export async function decodePng(b: Uint8Array, name = "image", maxPixels = MAX_PIXELS): Promise<DecodedRGB> {
  if (!isPng(b)) throw new Error(`${name}: not a PNG file (bad signature)`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 8;
  let width = 0, height = 0, depth = 0, ctype = -1, interlace = 0;
  let palette: Uint8Array | undefined;
  let exif: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  while (pos < b.length) {
    if (pos + 12 > b.length) throw new Error(`${name}: PNG truncated inside a chunk header at byte ${pos}`);
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]);
    const start = pos + 8, end = start + len;
    if (end + 4 > b.length) throw new Error(`${name}: PNG truncated: chunk ${type} needs ${len} bytes at byte ${start}, file has ${b.length} bytes`);
    if (crc32(b, pos + 4, end) !== dv.getUint32(end)) throw new Error(`${name}: PNG chunk ${JSON.stringify(type)} at byte ${pos} fails its CRC check (corrupt file)`);
    const body = b.subarray(start, end);
    if (type === "IHDR") {
      if (len !== 13) throw new Error(`${name}: PNG IHDR has length ${len}, expected 13`);
      width = dv.getUint32(start); height = dv.getUint32(start + 4);
      depth = body[8]; ctype = body[9]; interlace = body[12];
      if (!(ctype in CHANNELS) || !ALLOWED_DEPTHS[ctype].includes(depth)) {
        throw new Error(`${name}: unsupported PNG colour type ${ctype} with bit depth ${depth}`);
      }
      if (body[10] !== 0 || body[11] !== 0 || interlace > 1) {
        throw new Error(`${name}: unsupported PNG compression/filter/interlace method ${body[10]}/${body[11]}/${interlace}`);
      }
      if (width < 1 || height < 1) throw new Error(`${name}: PNG has empty size ${width}x${height}`);
      checkImageSize(width, height, name, maxPixels);
    } else if (type === "PLTE") {
      palette = body;
    } else if (type === "IDAT") {
      idat.push(body);
    } else if (type === "eXIf") {
      exif = body;
    } else if (type === "IEND") {
      break;
    }
    pos = end + 4;
  }
  if (ctype < 0) throw new Error(`${name}: PNG has no IHDR chunk`);
  if (idat.length === 0) throw new Error(`${name}: PNG truncated: no image data (IDAT)`);
  if (ctype === 3 && !palette) throw new Error(`${name}: palette PNG has no PLTE chunk`);
  // A missing IEND is tolerated: Pillow decodes files that stop after the last IDAT.

  const total = idat.reduce((s, c) => s + c.length, 0);
  const z = new Uint8Array(total);
  let o = 0;
  for (const c of idat) { z.set(c, o); o += c.length; }
  const ch = CHANNELS[ctype];
  const bitsPP = ch * depth;
  const bpp = Math.max(1, bitsPP >> 3); // filter byte distance (PNG spec sec. 9.2)
  const passes = interlace ? ADAM7 : [[0, 0, 1, 1]];
  // The exact size of the filtered scanlines the header implies: inflating stops a little past it
  // (a zlib bomb cannot grow the output beyond what the checked width x height needs), and the
  // RGB result is allocated only once the data is known to be there.
  let needed = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw > 0 && ph > 0) needed += (Math.ceil((pw * bitsPP) / 8) + 1) * ph;
  }
  const raw = await inflateZlib(z, `${name}: PNG image data`, needed + INFLATE_SLACK);
  if (raw.length < needed) {
    throw new Error(`${name}: PNG truncated: image data has ${raw.length} bytes, ${needed} needed for ${width}x${height}`);
  }
  const rgb = new Uint8Array(width * height * 3);
  let rp = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const rowBytes = Math.ceil((pw * bitsPP) / 8);
    const need = (rowBytes + 1) * ph;
    if (rp + need > raw.length) {
      throw new Error(`${name}: PNG truncated: image data has ${raw.length} bytes, ${rp + need} needed for ${width}x${height}`);
    }
    const lines = unfilter(raw, rp, ph, bpp, rowBytes, name);
    rp += need;
    for (let y = 0; y < ph; y++) {
      const line = y * rowBytes;
      let d = ((y0 + y * dy) * width + x0) * 3;
      const step = dx * 3;
      for (let x = 0; x < pw; x++, d += step) writePixel(rgb, d, lines, line, x, ctype, depth, palette);
    }
  }
  return { width, height, rgb, exif };
}

/** Convert the pixel x of one unfiltered scanline to RGB as Pillow's convert("RGB") would. */
function writePixel(
  rgb: Uint8Array, d: number, s: Uint8Array, line: number, x: number,
  ctype: number, depth: number, palette: Uint8Array | undefined,
): void {
  let r: number, g: number, bl: number;
  if (depth < 8) {
    // Packed samples, most significant bits first (PNG spec sec. 7.2).
    const perByte = 8 / depth;
    const byte = s[line + Math.floor(x / perByte)];
    const shift = 8 - depth * (x % perByte + 1);
    const v = (byte >> shift) & ((1 << depth) - 1);
    if (ctype === 3) {
      [r, g, bl] = paletteEntry(palette!, v);
    } else {
      r = g = bl = v * (255 / ((1 << depth) - 1)); // 1→×255, 2→×85, 4→×17, exact integers
    }
  } else if (depth === 8) {
    switch (ctype) {
      case 0: r = g = bl = s[line + x]; break;
      case 2: case 6: {
        const p = line + x * (ctype === 2 ? 3 : 4);
        r = s[p]; g = s[p + 1]; bl = s[p + 2];
        break;
      }
      case 3: [r, g, bl] = paletteEntry(palette!, s[line + x]); break;
      default: r = g = bl = s[line + x * 2]; // gray+alpha
    }
  } else {
    switch (ctype) {
      case 0: { // mode "I": clamp, see the header comment
        const v = (s[line + x * 2] << 8) | s[line + x * 2 + 1];
        r = g = bl = v > 255 ? 255 : v;
        break;
      }
      case 2: case 6: {
        const p = line + x * (ctype === 2 ? 6 : 8);
        r = s[p]; g = s[p + 2]; bl = s[p + 4]; // high bytes
        break;
      }
      default: r = g = bl = s[line + x * 4]; // "LA;16B": high byte of gray
    }
  }
  rgb[d] = r; rgb[d + 1] = g; rgb[d + 2] = bl;
}

function paletteEntry(p: Uint8Array, i: number): [number, number, number] {
  return i * 3 + 2 < p.length ? [p[i * 3], p[i * 3 + 1], p[i * 3 + 2]] : [0, 0, 0];
}
