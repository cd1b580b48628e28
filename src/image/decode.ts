// Image bytes → 8-bit RGB, matching `Image.open(path).convert("RGB")` of the reference
// (/work/shared/upstream/visual.py:422-423). The format is taken from the content, never from the
// file name (one of the reference's own images is a JPEG named .png), as Pillow does.
import { applyOrientation, exifOrientation } from "./exif.js";
import { decodeJpeg, isJpeg } from "./jpeg.js";
import { decodePng, isPng } from "./png.js";
import { decodeGif, isGif } from "./gif.js";
import { decodeBmp, isBmp } from "./bmp.js";
import { maxPixelsOf } from "./limits.js";

export interface LoadImageOptions {
  /** Name used in error messages (usually the file path). */
  name?: string;
  /**
   * Rotate/flip by the EXIF orientation tag like Pillow's ImageOps.exif_transpose. Default false:
   * the reference does not, so the model sees the stored pixel order.
   */
  applyExifOrientation?: boolean;
  /**
   * Largest image accepted, in megapixels (width x height / 10^6), checked against the size the
   * file's header declares before any pixel memory is allocated. Default DEFAULT_MAX_MEGAPIXELS
   * (178.96, Pillow's decompression-bomb limit, so the default accepts what the reference does).
   */
  maxMegapixels?: number;
}

export interface RGBImage {
  width: number;
  height: number;
  /** Interleaved RGB, row-major: rgb[(y * width + x) * 3 + c]. */
  rgb: Uint8Array;
}

export type ImageFormat = "jpeg" | "png" | "gif" | "bmp" | "webp" | "tiff" | "unknown";

/** Recognise the container from its magic bytes. */
export function sniffFormat(b: Uint8Array): ImageFormat {
  const ascii = (o: number, n: number): string => String.fromCharCode(...b.subarray(o, o + n));
  if (isJpeg(b)) return "jpeg";
  if (isPng(b)) return "png";
  if (isGif(b)) return "gif";
  if (isBmp(b)) return "bmp";
  if (b.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 4) === "WEBP") return "webp";
  if (b.length >= 4 && (ascii(0, 4) === "II*\0" || ascii(0, 4) === "MM\0*")) return "tiff";
  return "unknown";
}

/**
 * Decode an image file's bytes to RGB. Throws an Error naming the file and the problem; bad input
 * never escapes as anything else (a decoder slip such as a RangeError is wrapped with the name).
 */
export async function loadImage(bytes: Uint8Array, opts: LoadImageOptions = {}): Promise<RGBImage> {
  const name = opts.name ?? "image";
  try {
    return await loadImageUnchecked(bytes, name, opts);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith(`${name}: `)) throw e;
    throw new Error(`${name}: corrupt or unsupported image (${e instanceof Error ? e.message : String(e)})`);
  }
}

async function loadImageUnchecked(bytes: Uint8Array, name: string, opts: LoadImageOptions): Promise<RGBImage> {
  if (!(bytes instanceof Uint8Array)) throw new Error(`${name}: expected the file contents as a Uint8Array`);
  if (bytes.length === 0) throw new Error(`${name}: file is empty`);
  const maxPixels = maxPixelsOf(opts.maxMegapixels, name);
  const fmt = sniffFormat(bytes);
  let img: { width: number; height: number; rgb: Uint8Array; exif?: Uint8Array };
  switch (fmt) {
    case "jpeg": img = await decodeJpeg(bytes, name, maxPixels); break;
    case "png": img = await decodePng(bytes, name, maxPixels); break;
    case "gif": img = decodeGif(bytes, name, maxPixels); break;
    case "bmp": img = decodeBmp(bytes, name, maxPixels); break;
    case "webp": case "tiff":
      throw new Error(`${name}: ${fmt.toUpperCase()} images are not supported (supported: JPEG, PNG, GIF, BMP); convert it to PNG`);
    default: {
      const head = Array.from(bytes.subarray(0, 8), (v) => v.toString(16).padStart(2, "0")).join(" ");
      throw new Error(`${name}: unrecognised image format (first bytes: ${head}); supported: JPEG, PNG, GIF, BMP`);
    }
  }
  if (opts.applyExifOrientation) {
    const o = exifOrientation(img.exif);
    if (o > 1) return applyOrientation(img.rgb, img.width, img.height, o);
  }
  return { width: img.width, height: img.height, rgb: img.rgb };
}
