// A small SVG writer for the benchmark's charts: panels of horizontal bars, no dependencies.
//
//   svgBarChart(title, panels) → SVG text (one <rect class="bar"> per bar, so a reader can count them)
//
// A panel's bars are drawn against `scaleMax` (the panel's largest value when absent). A bar with a
// `track` gets a light background bar of that length first: used for achieved-vs-limit panels,
// where the track is the limit and the bar the achieved rate.

export interface Bar {
  readonly label: string;
  readonly value: number;
  /** Background bar (e.g. the limit the value is measured against), same scale as value. */
  readonly track?: number;
  /** Text right of the bar. */
  readonly note: string;
}

export interface Panel {
  readonly title: string;
  readonly bars: readonly Bar[];
  readonly scaleMax?: number;
}

const WIDTH = 980;
const LABEL_W = 300;
const BAR_W = 440;
const ROW_H = 20;
const PANEL_GAP = 34;

/** Text content and attribute values: the five XML specials, and no control characters. */
export function xmlEscape(s: string): string {
  return s
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const num = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 10) / 10) : "0");

export function svgBarChart(title: string, panels: readonly Panel[]): string {
  const out: string[] = [];
  let y = 36;
  for (const p of panels) {
    out.push(`<text class="panel" x="8" y="${y}">${xmlEscape(p.title)}</text>`);
    y += 10;
    const max = p.scaleMax ?? Math.max(1e-12, ...p.bars.map((b) => Math.max(b.value, b.track ?? 0)));
    const len = (v: number): number => Math.max(0, Math.min(BAR_W, (BAR_W * v) / max));
    for (const b of p.bars) {
      if (b.track !== undefined) out.push(`<rect class="track" x="${LABEL_W}" y="${y + 3}" width="${num(len(b.track))}" height="${ROW_H - 6}"/>`);
      out.push(`<rect class="bar" x="${LABEL_W}" y="${y + 3}" width="${num(len(b.value))}" height="${ROW_H - 6}"/>`);
      out.push(`<text x="${LABEL_W - 6}" y="${y + 14}" text-anchor="end">${xmlEscape(b.label)}</text>`);
      out.push(`<text x="${LABEL_W + BAR_W + 8}" y="${y + 14}">${xmlEscape(b.note)}</text>`);
      y += ROW_H;
    }
    y += PANEL_GAP;
  }
  const height = y;
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">\n` +
    `<style>text{font:12px sans-serif;fill:#222}.title{font-size:15px;font-weight:bold}.panel{font-weight:bold}` +
    `.bar{fill:#3b6ea8}.track{fill:#dde3ea}</style>\n` +
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>\n` +
    `<text class="title" x="8" y="20">${xmlEscape(title)}</text>\n` +
    out.join("\n") +
    "\n</svg>\n"
  );
}
