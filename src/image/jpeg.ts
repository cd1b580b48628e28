// JPEG → RGB with the pixels Pillow (libjpeg-turbo underneath) produces for `convert("RGB")`.
//
// 1- and 3-component files go through @jsquash/jpeg (mozjpeg compiled to WebAssembly): mozjpeg is
// libjpeg-turbo with an encoder fork, and its default decode (ISLOW IDCT, fancy upsampling) is the
// one Pillow uses, so the pixels are identical (measured on every JPEG fixture, see docs/images.md).
// mozjpeg as packaged only outputs RGBA and refuses 4-component files ("Unsupported color conversion
// request"), so CMYK/YCCK files go through the exact libjpeg re-implementation in cmyk.ts and then
// Pillow's CMYK → RGB conversion.
import { decodeJpegExact, cmykToRgbPIL } from "./cmyk.js";
import type { DecodedRGB } from "./png.js";
import { MAX_PIXELS, checkImageSize } from "./limits.js";

export function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

export interface JpegInfo {
  width: number;
  height: number;
  components: number;
  progressive: boolean;
  /** Adobe APP14 transform flag, -1 without that marker. */
  adobeTransform: number;
  /** TIFF-structured EXIF block from APP1, when present. */
  exif?: Uint8Array;
}

/**
 * Walk the marker segments (not the entropy-coded data) and check that the file is complete:
 * a frame header, at least one scan, and an EOI marker after the last scan. libjpeg itself pads
 * a truncated file with grey and only warns; Pillow turns that into "image file is truncated",
 * and so do we.
 */
export function inspectJpeg(b: Uint8Array, name = "image", maxPixels = MAX_PIXELS): JpegInfo {
  const fail = (msg: string): never => { throw new Error(`${name}: ${msg}`); };
  if (!isJpeg(b)) fail("not a JPEG file (no SOI marker)");
  let info: JpegInfo | undefined;
  let adobeTransform = -1, exif: Uint8Array | undefined, scans = 0;
  let p = 2;
  for (;;) {
    // Find the next marker; between scans this skips the entropy-coded data (FF00 and RSTn are not markers).
    while (p + 1 < b.length && !(b[p] === 0xff && b[p + 1] !== 0 && b[p + 1] !== 0xff && !(b[p + 1] >= 0xd0 && b[p + 1] <= 0xd7))) p++;
    if (p + 1 >= b.length) {
      if (scans === 0) fail(info ? "JPEG truncated: no complete scan (image data missing)" : "JPEG truncated: no frame header found");
      fail("JPEG truncated: file ends before the end-of-image marker (image file is truncated)");
    }
    const m = b[p + 1];
    p += 2;
    if (m === 0xd9) break;
    if (p + 2 > b.length) fail("JPEG truncated inside a marker segment");
    const len = (b[p] << 8) | b[p + 1];
    if (len < 2 || p + len > b.length) fail(`JPEG truncated: marker 0x${m.toString(16)} segment of ${len} bytes runs past the end of the file`);
    const seg = b.subarray(p + 2, p + len);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (seg.length < 6) fail("JPEG frame header too short");
      info = {
        height: (seg[1] << 8) | seg[2], width: (seg[3] << 8) | seg[4], components: seg[5],
        progressive: m === 0xc2 || m === 0xc6 || m === 0xca || m === 0xce, adobeTransform: -1,
      };
      if (info.width === 0 || info.height === 0) fail(`JPEG has empty size ${info.width}x${info.height}`);
      checkImageSize(info.width, info.height, name, maxPixels);
    } else if (m === 0xda) {
      scans++;
    } else if (m === 0xee && seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === "Adobe") {
      adobeTransform = seg[11];
    } else if (m === 0xe1 && !exif && seg.length > 14 && String.fromCharCode(...seg.subarray(0, 4)) === "Exif" && seg[4] === 0 && seg[5] === 0) {
      exif = seg.subarray(6);
    }
    p += len;
  }
  if (!info) fail("JPEG has no frame header");
  if (scans === 0) fail("JPEG has no image data (no scan)");
  return { ...info!, adobeTransform, exif };
}

type JsquashDecode = (data: ArrayBuffer) => Promise<{ width: number; height: number; data: Uint8ClampedArray }>;
let jsquash: Promise<JsquashDecode> | undefined;
/** libjpeg's messages from the current decode (warnings and the fatal error), instead of stderr. */
let libjpegMessages: string[] = [];
const moduleOptions = { print: (s: string) => libjpegMessages.push(s), printErr: (s: string) => libjpegMessages.push(s) };

let wasmModule: Promise<object> | undefined;

/**
 * Instantiate mozjpeg. Under Node the .wasm file is read from the package and compiled once
 * (emscripten's own loader only fetches over HTTP there); browsers let the module locate it next
 * to its JS. A fresh instance is made after every failed decode: libjpeg leaves through exit(),
 * which unwinds past the C stack without restoring it, and a reused instance was seen to hang on a
 * later file.
 */
async function loadJsquash(): Promise<JsquashDecode> {
  const mod = await import("@jsquash/jpeg/decode.js");
  const g = globalThis as { process?: { versions?: { node?: string } } };
  if (g.process?.versions?.node) {
    wasmModule ??= (async () => {
      const { readFile } = await import("node:fs/promises");
      const { fileURLToPath } = await import("node:url");
      const url = import.meta.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm");
      // The WebAssembly global exists in every runtime that runs this; lib "ES2023" does not declare it.
      const WA = (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<object> } }).WebAssembly;
      return WA.compile(await readFile(fileURLToPath(url)));
    })();
    await (mod.init as unknown as (m: object, o: object) => Promise<void>)(await wasmModule, moduleOptions);
  } else {
    await (mod.init as unknown as (o: object) => Promise<void>)(moduleOptions);
  }
  return mod.default as unknown as JsquashDecode;
}

/** Decode a JPEG to RGB as Pillow's `Image.open(f).convert("RGB")` does. */
export async function decodeJpeg(b: Uint8Array, name = "image", maxPixels = MAX_PIXELS): Promise<DecodedRGB> {
  const info = inspectJpeg(b, name, maxPixels);
  if (info.components === 4) {
    const planes = decodeJpegExact(b, name, maxPixels);
    return { width: planes.width, height: planes.height, rgb: cmykToRgbPIL(planes.data, planes.width * planes.height), exif: info.exif };
  }
  if (info.components !== 1 && info.components !== 3) throw new Error(`${name}: unsupported JPEG with ${info.components} components`);
  jsquash ??= loadJsquash();
  const decode = await jsquash;
  let img;
  libjpegMessages = [];
  try {
    // preserveOrientation stays false: mozjpeg must not rotate (the reference does not).
    img = await decode(b.slice().buffer as ArrayBuffer);
  } catch (e) {
    // libjpeg reports the reason through its message output, then exits; start afresh next time.
    jsquash = undefined;
    const why = libjpegMessages.length ? libjpegMessages[libjpegMessages.length - 1] : (e as Error).message;
    throw new Error(`${name}: corrupt or unsupported JPEG (${why})`);
  }
  return { width: img.width, height: img.height, rgb: rgbaToRgb(img.data, img.width * img.height), exif: info.exif };
}

/**
 * The first three bytes of each of `n` RGBA pixels. Four pixels at a time as 32-bit words (four
 * RGBA words in, three RGB words out, little-endian byte order as every WebAssembly host has):
 * on a 2048 × 1365 photo 7.5–8 ms against 11–13 for a loop over bytes on the development CPU,
 * ~3.5 ms of either being the first touch of the fresh 8 MB output. The bytes are the same as
 * the per-byte loop's, which is what runs on unaligned views and on the last n % 4 pixels.
 */
export function rgbaToRgb(d: Uint8Array | Uint8ClampedArray, n: number): Uint8Array {
  if (d.length < 4 * n) throw new Error(`rgbaToRgb: ${d.length} bytes hold fewer than ${n} RGBA pixels`);
  const rgb = new Uint8Array(n * 3);
  let i = 0;
  if (d.byteOffset % 4 === 0 && LITTLE_ENDIAN) {
    const src = new Uint32Array(d.buffer, d.byteOffset, n);
    const dst = new Uint32Array(rgb.buffer, 0, Math.floor((n * 3) / 4));
    for (let w = 0; i + 4 <= n; i += 4, w += 3) {
      const p0 = src[i], p1 = src[i + 1], p2 = src[i + 2], p3 = src[i + 3];
      dst[w] = (p0 & 0xffffff) | (p1 << 24); // R0 G0 B0 R1
      dst[w + 1] = ((p1 >>> 8) & 0xffff) | (p2 << 16); // G1 B1 R2 G2
      dst[w + 2] = ((p2 >>> 16) & 0xff) | (p3 << 8); // B2 R3 G3 B3
    }
  }
  for (; i < n; i++) { rgb[3 * i] = d[4 * i]; rgb[3 * i + 1] = d[4 * i + 1]; rgb[3 * i + 2] = d[4 * i + 2]; }
  return rgb;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
