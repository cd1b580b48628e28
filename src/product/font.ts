// Label text for drawn boxes: glyph outlines from Noto Sans SC (the npm package
// @fontsource/noto-sans-sc, SIL OFL) rasterised here into an anti-aliased coverage mask.
//
// Why this font: the reference draws labels with SimSun.ttf (tokenization_qwen.py:518, a file of
// the Qwen-VL-Chat repository); the model names objects in Chinese as often as in English, so a
// font without CJK glyphs would draw empty boxes. Noto Sans SC covers Latin, CJK and the common
// symbols. The package ships the font as ~100 WOFF subsets, each with a CSS `unicode-range`; a
// code point is looked up in those ranges and only the subsets a label needs are parsed.
//
// Why a rasteriser of our own: the alternatives are native (node-canvas, skia) or have no CJK
// font. Outlines are flattened to line segments and filled with the nonzero rule (TrueType and
// CFF glyphs both use it), sampled on SUBROWS sub-scanlines per pixel row with exact horizontal
// coverage per span, so strokes are anti-aliased in both directions.
//
// API
//   loadLabelFont(): LabelFont                         (cached per process)
//   font.render(text, pixelSize): TextMask             coverage 0..1 per pixel
//   interface TextMask { width, height, baseline, coverage: Float32Array }
import * as fs from "node:fs";
import * as path from "node:path";
import { createRequire } from "node:module";
import opentype, { type Font, type PathCommand } from "opentype.js";

/** Sub-scanlines per pixel row (vertical anti-aliasing). */
const SUBROWS = 5;
/** Line segments per quadratic/cubic Bézier: enough for glyphs up to ~200 px. */
const CURVE_STEPS = 8;

export interface TextMask {
  readonly width: number;
  readonly height: number;
  /** Row of the baseline, from the top of the mask. */
  readonly baseline: number;
  /** Coverage 0..1, row-major [height, width]. */
  readonly coverage: Float32Array;
}

interface Subset {
  readonly file: string;
  readonly ranges: readonly (readonly [number, number])[];
  font?: Font;
}

type Edge = [x0: number, y0: number, x1: number, y1: number];

let cached: LabelFont | undefined;

/** The label font (Noto Sans SC 400), loaded once per process. */
export function loadLabelFont(): LabelFont {
  cached ??= new LabelFont(fontPackageDir());
  return cached;
}

/** The directory of the installed @fontsource/noto-sans-sc package (its CSS and WOFF files). */
export function fontPackageDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve("@fontsource/noto-sans-sc/package.json"));
}

export class LabelFont {
  private readonly subsets: Subset[] = [];

  constructor(private readonly dir: string) {
    const cssFile = path.join(dir, "400.css");
    const css = fs.readFileSync(cssFile, "utf8");
    for (const m of css.matchAll(/@font-face\s*{([^}]*)}/g)) {
      const file = /url\(\.\/files\/([^)]+\.woff)\)/.exec(m[1])?.[1];
      const range = /unicode-range:\s*([^;]+);/.exec(m[1])?.[1];
      if (!file || !range) continue;
      const ranges = range.split(",").map((r): [number, number] => {
        const [lo, hi] = r.trim().replace(/^U\+/i, "").split("-");
        return [parseInt(lo, 16), parseInt(hi ?? lo, 16)];
      });
      this.subsets.push({ file, ranges });
    }
    if (this.subsets.length === 0) throw new Error(`${cssFile}: no @font-face with a WOFF file and a unicode-range`);
  }

  /** The subset font holding code point `cp`, or null when the font has no glyph for it. */
  private fontFor(cp: number): Font | null {
    for (const s of this.subsets) {
      if (!s.ranges.some(([lo, hi]) => cp >= lo && cp <= hi)) continue;
      if (!s.font) {
        const b = fs.readFileSync(path.join(this.dir, "files", s.file));
        s.font = opentype.parse(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
      }
      return s.font;
    }
    return null;
  }

  /**
   * Renders one line of `text` at `pixelSize` (the em size in pixels). The mask is as tall as
   * the font's ascender + descender and as wide as the advances; characters the font lacks
   * (and control characters) advance by half an em and draw nothing.
   */
  render(text: string, pixelSize: number): TextMask {
    const ref = this.fontFor(0x41)!; // vertical metrics from the Latin subset (all subsets share them)
    const ascent = (ref.ascender / ref.unitsPerEm) * pixelSize;
    const descent = (-ref.descender / ref.unitsPerEm) * pixelSize;
    const baseline = Math.ceil(ascent);
    const height = baseline + Math.ceil(descent);
    const edges: Edge[] = [];
    let pen = 0;
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      const font = cp >= 0x20 ? this.fontFor(cp) : null;
      if (!font || !font.hasChar(ch)) {
        pen += pixelSize / 2;
        continue;
      }
      const glyph = font.charToGlyph(ch);
      addOutline(edges, glyph.getPath(pen, baseline, pixelSize).commands);
      pen += ((glyph.advanceWidth ?? font.unitsPerEm / 2) / font.unitsPerEm) * pixelSize;
    }
    const width = Math.max(1, Math.ceil(pen));
    return { width, height, baseline, coverage: fillNonzero(edges, width, height) };
  }
}

/** Flattens path commands (y down, pixels) into closed polygons of line segments. */
function addOutline(edges: Edge[], cmds: readonly PathCommand[]): void {
  let sx = 0, sy = 0, x = 0, y = 0;
  const line = (nx: number, ny: number) => {
    if (ny !== y) edges.push([x, y, nx, ny]); // horizontal segments never cross a scanline
    x = nx;
    y = ny;
  };
  for (const c of cmds) {
    switch (c.type) {
      case "M":
        if (x !== sx || y !== sy) line(sx, sy);
        sx = x = c.x!;
        sy = y = c.y!;
        break;
      case "L":
        line(c.x!, c.y!);
        break;
      case "Q": {
        const x0 = x, y0 = y;
        for (let i = 1; i <= CURVE_STEPS; i++) {
          const t = i / CURVE_STEPS, u = 1 - t;
          line(u * u * x0 + 2 * u * t * c.x1! + t * t * c.x!, u * u * y0 + 2 * u * t * c.y1! + t * t * c.y!);
        }
        break;
      }
      case "C": {
        const x0 = x, y0 = y;
        for (let i = 1; i <= CURVE_STEPS; i++) {
          const t = i / CURVE_STEPS, u = 1 - t;
          const a = u * u * u, b = 3 * u * u * t, d = 3 * u * t * t, e = t * t * t;
          line(a * x0 + b * c.x1! + d * c.x2! + e * c.x!, a * y0 + b * c.y1! + d * c.y2! + e * c.y!);
        }
        break;
      }
      case "Z":
        line(sx, sy);
        break;
    }
  }
  if (x !== sx || y !== sy) line(sx, sy);
}

/**
 * Nonzero-winding fill of `edges` into a [height, width] coverage mask: for each sub-scanline,
 * the crossings sorted by x; the spans where the winding number is non-zero add their exact
 * overlap with each pixel (1/SUBROWS per sub-scanline).
 */
function fillNonzero(edges: readonly Edge[], width: number, height: number): Float32Array {
  const cov = new Float32Array(width * height);
  const xs: [number, number][] = [];
  for (let row = 0; row < height; row++) {
    for (let s = 0; s < SUBROWS; s++) {
      const sy = row + (s + 0.5) / SUBROWS;
      xs.length = 0;
      for (const [x0, y0, x1, y1] of edges) {
        // half-open in y so a vertex shared by two edges is counted once
        if ((y0 <= sy && sy < y1) || (y1 <= sy && sy < y0)) {
          xs.push([x0 + ((sy - y0) / (y1 - y0)) * (x1 - x0), y1 > y0 ? 1 : -1]);
        }
      }
      xs.sort((a, b) => a[0] - b[0]);
      let wind = 0;
      for (let i = 0; i < xs.length - 1; i++) {
        wind += xs[i][1];
        if (wind !== 0) addSpan(cov, row * width, width, xs[i][0], xs[i + 1][0]);
      }
    }
  }
  return cov;
}

function addSpan(cov: Float32Array, rowStart: number, width: number, a: number, b: number): void {
  a = Math.max(0, a);
  b = Math.min(width, b);
  if (b <= a) return;
  const w = 1 / SUBROWS;
  const ia = Math.floor(a), ib = Math.floor(b);
  if (ia === ib) {
    cov[rowStart + ia] += (b - a) * w;
    return;
  }
  cov[rowStart + ia] += (ia + 1 - a) * w;
  for (let i = ia + 1; i < ib; i++) cov[rowStart + i] += w;
  if (ib < width) cov[rowStart + ib] += (b - ib) * w;
}
