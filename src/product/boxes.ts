// Grounding boxes drawn on a picture: the reference's `draw_bbox_on_latest_picture`
// (tokenization_qwen.py:427-456) and its matplotlib Visualizer (tokenization_qwen.py:515-585).
//
//   response ──_fetch_all_box_with_ref──► [{box: 0..1000 grid, ref?}]
//   latest <img> of response/history ──decode──► RGB (original size)
//   box → pixels: int(v / 1000 · w), int(v / 1000 · h)          (tokenization_qwen.py:450)
//   every box: an outline in its colour; then every ref: its label at the box's top-left corner,
//   light text on a black 80 % backdrop                          (tokenization_qwen.py:527-558)
//
// Sizes follow matplotlib at its default 100 dpi: the font is
// max(sqrt(h·w) // 30, 15) points (tokenization_qwen.py:523-525), a point is 100/72 pixels, the
// line is max(font/4, 1) points wide and centred on the box edge, the label's backdrop pads the
// text by 0.7 font sizes (matplotlib's bbox "pad" is in font-size units).
//
// One difference on purpose: the reference picks each ref's colour with random.choice over the
// ten Tableau colours; here the refs take them in order (tab:blue, tab:orange, ...), so a drawing
// is reproducible.
import * as fs from "node:fs";
import { loadImage, type RGBImage } from "../image/decode.js";
import { encodePng } from "../image/png-encode.js";
import { fetchAllBoxWithRef, fetchLatestPicture, type BoxWithRef } from "../tokenizer/list-format.js";
import type { QwenTokenizer } from "../tokenizer/tokenizer.js";
import { loadLabelFont, type LabelFont } from "./font.js";

/** matplotlib.colors.TABLEAU_COLORS, in its order. */
export const TABLEAU_COLORS: readonly (readonly [number, number, number])[] = [
  [0x1f, 0x77, 0xb4], [0xff, 0x7f, 0x0e], [0x2c, 0xa0, 0x2c], [0xd6, 0x27, 0x28], [0x94, 0x67, 0xbd],
  [0x8c, 0x56, 0x4b], [0xe3, 0x77, 0xc2], [0x7f, 0x7f, 0x7f], [0xbc, 0xbd, 0x22], [0x17, 0xbe, 0xcf],
];

/** matplotlib's figure dpi (Figure() default, rcParams["figure.dpi"] = 100) over 72 points per inch. */
const PX_PER_POINT = 100 / 72;
/** bbox pad of the label backdrop, in font sizes (tokenization_qwen.py:551). */
const LABEL_PAD = 0.7;
/** bbox alpha of the label backdrop (tokenization_qwen.py:551). */
const LABEL_BACKDROP_ALPHA = 0.8;

export interface DrawnBox {
  /** Pixel corners after int(v / 1000 · size). */
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
  readonly color: readonly [number, number, number];
  readonly ref?: string;
}

export interface DrawResult {
  readonly image: RGBImage;
  readonly boxes: DrawnBox[];
}

/** Font size in points for an image (tokenization_qwen.py:523-525, scale 1). */
export function defaultFontSize(width: number, height: number): number {
  return Math.max(Math.floor(Math.sqrt(height * width) / 30), 15);
}

/** Box corners on the 0..1000 grid → pixel corners of a width × height image (tokenization_qwen.py:450). */
export function boxToPixels(box: readonly number[], width: number, height: number): [number, number, number, number] {
  const [x1, y1, x2, y2] = box;
  return [Math.trunc((x1 / 1000) * width), Math.trunc((y1 / 1000) * height), Math.trunc((x2 / 1000) * width), Math.trunc((y2 / 1000) * height)];
}

/** Draws `boxes` on a copy of `img`. */
export function drawBoxes(img: RGBImage, boxes: readonly BoxWithRef[], font: LabelFont = loadLabelFont()): DrawResult {
  const out: RGBImage = { width: img.width, height: img.height, rgb: new Uint8Array(img.rgb) };
  const fs = defaultFontSize(img.width, img.height);
  const lineWidth = Math.max(fs / 4, 1) * PX_PER_POINT;
  let color = TABLEAU_COLORS[0];
  let refs = 0;
  const drawn: DrawnBox[] = boxes.map((b) => {
    if (b.ref !== undefined) color = TABLEAU_COLORS[refs++ % TABLEAU_COLORS.length]; // new colour per refexp
    const [x1, y1, x2, y2] = boxToPixels(b.box, img.width, img.height);
    return { x1, y1, x2, y2, color, ...(b.ref !== undefined ? { ref: b.ref } : {}) };
  });
  // Patches (zorder 1) under texts (zorder 10), as matplotlib orders its artists.
  for (const d of drawn) strokeRect(out, d.x1, d.y1, d.x2, d.y2, lineWidth, d.color);
  for (const d of drawn) {
    if (d.ref === undefined) continue;
    const mask = font.render(d.ref, fs * PX_PER_POINT);
    const pad = LABEL_PAD * fs * PX_PER_POINT;
    fillRect(out, d.x1 - pad, d.y1 - pad, d.x1 + mask.width + pad, d.y1 + mask.height + pad, [0, 0, 0], LABEL_BACKDROP_ALPHA);
    blendMask(out, mask.coverage, mask.width, mask.height, d.x1, d.y1, labelColor(d.color));
  }
  return { image: out, boxes: drawn };
}

/** The text colour on the dark backdrop (tokenization_qwen.py:540-542). */
export function labelColor(c: readonly [number, number, number]): [number, number, number] {
  const v = c.map((x) => Math.max(x / 255, 0.2));
  const m = v.indexOf(Math.max(...v));
  v[m] = Math.max(0.8, v[m]);
  return [Math.round(v[0] * 255), Math.round(v[1] * 255), Math.round(v[2] * 255)];
}

/** Overlap of pixel [i, i+1) with [a, b). */
function overlap(i: number, a: number, b: number): number {
  return Math.max(0, Math.min(i + 1, b) - Math.max(i, a));
}

function blend(img: RGBImage, x: number, y: number, c: readonly number[], alpha: number): void {
  if (alpha <= 0) return;
  const o = (y * img.width + x) * 3;
  for (let k = 0; k < 3; k++) img.rgb[o + k] = Math.round(img.rgb[o + k] * (1 - alpha) + c[k] * alpha);
}

/** Area-weighted fill of the rectangle [x0, x1) × [y0, y1) (clipped to the image). */
function fillRect(img: RGBImage, x0: number, y0: number, x1: number, y1: number, c: readonly number[], alpha: number): void {
  for (let y = Math.max(0, Math.floor(y0)); y < Math.min(img.height, Math.ceil(y1)); y++) {
    const oy = overlap(y, y0, y1);
    for (let x = Math.max(0, Math.floor(x0)); x < Math.min(img.width, Math.ceil(x1)); x++) {
      blend(img, x, y, c, alpha * oy * overlap(x, x0, x1));
    }
  }
}

/** A rectangle outline `lw` pixels wide centred on the edges (matplotlib's Rectangle, fill=False). */
function strokeRect(img: RGBImage, x0: number, y0: number, x1: number, y1: number, lw: number, c: readonly number[]): void {
  const h = lw / 2;
  const [ox0, oy0, ox1, oy1] = [Math.min(x0, x1) - h, Math.min(y0, y1) - h, Math.max(x0, x1) + h, Math.max(y0, y1) + h];
  const [ix0, iy0, ix1, iy1] = [ox0 + lw, oy0 + lw, ox1 - lw, oy1 - lw];
  for (let y = Math.max(0, Math.floor(oy0)); y < Math.min(img.height, Math.ceil(oy1)); y++) {
    const oy = overlap(y, oy0, oy1);
    const iy = ix1 > ix0 && iy1 > iy0 ? overlap(y, iy0, iy1) : 0;
    for (let x = Math.max(0, Math.floor(ox0)); x < Math.min(img.width, Math.ceil(ox1)); x++) {
      const cover = oy * overlap(x, ox0, ox1) - (iy > 0 ? iy * overlap(x, ix0, ix1) : 0);
      blend(img, x, y, c, Math.min(1, cover));
    }
  }
}

function blendMask(img: RGBImage, cov: Float32Array, w: number, h: number, left: number, top: number, c: readonly number[]): void {
  for (let y = 0; y < h; y++) {
    const iy = top + y;
    if (iy < 0 || iy >= img.height) continue;
    for (let x = 0; x < w; x++) {
      const ix = left + x;
      if (ix < 0 || ix >= img.width) continue;
      blend(img, ix, iy, c, Math.min(1, cov[y * w + x]));
    }
  }
}

export interface LatestPictureDrawing extends DrawResult {
  /** The picture's path as written in its <img> tag. */
  readonly picture: string;
}

/**
 * draw_bbox_on_latest_picture (tokenization_qwen.py:427-456): the boxes of `response` drawn on
 * the last picture of the response, else of the newest history query that has one; null when
 * there is no picture or no box. The picture is read like chat() reads images (`readImage`).
 */
export async function drawBoxesOnLatestPicture(
  tokenizer: QwenTokenizer,
  response: string,
  history: readonly (readonly [string, string | null])[],
  readImage: (picture: string) => Uint8Array,
): Promise<LatestPictureDrawing | null> {
  const picture = fetchLatestPicture(tokenizer, response, history);
  if (picture === null) return null;
  const boxes = fetchAllBoxWithRef(tokenizer, response);
  if (boxes.length === 0) return null;
  const img = await loadImage(readImage(picture), { name: picture });
  return { picture, ...drawBoxes(img, boxes) };
}

/** Writes an RGB image as PNG (the only output format; the name must end in .png). */
export function writePng(file: string, img: RGBImage): void {
  if (!/\.png$/i.test(file)) throw new Error(`${file}: boxes are written as PNG; give a file name ending in .png`);
  fs.writeFileSync(file, encodePng(img));
}
