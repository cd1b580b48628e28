// The end-to-end benchmark's table (markdown, stdout) and chart (SVG): headline figures next to
// the project's targets (docs/performance.md, "End to end"), and per phase where the time goes.
import type { E2EResult, OpRow, PhaseProfile } from "./e2e.js";
import { svgBarChart, type Bar, type Panel } from "./svg.js";

/** The targets of docs/performance.md for the full-size model on a 2-core machine. */
export const TARGETS = [
  { key: "load_s", what: "load", unit: "s", target: undefined, better: "lower" },
  { key: "vision_s", what: "image encode (448², one image)", unit: "s", target: 60, better: "lower" },
  { key: "prefill_tps", what: "prefill (prompt with one image)", unit: "tok/s", target: 15, better: "higher" },
  { key: "decode_tps", what: "decode", unit: "tok/s", target: 4, better: "higher" },
  { key: "peak_rss_gb", what: "peak RSS", unit: "GB", target: 12, better: "lower" },
] as const;

/** An op row goes into the achieved-vs-limit panel when it has a rate and ≥ this % of the phase. */
export const LIMIT_CHART_MIN_SHARE = 1;

/** The same figure at the limits of this run (e2e.ts: PhaseProfile.floorMs). */
const CEILING: Record<string, string> = { vision_s: "vision_s_floor", prefill_tps: "prefill_tps_ceiling", decode_tps: "decode_tps_ceiling" };

const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));

export function e2eTable(r: E2EResult): string {
  const j = r.json;
  const lines = ["| figure | measured | at the limits of this run | target |", "| --- | ---: | ---: | ---: |"];
  for (const t of TARGETS) {
    const v = Number(j[t.key]);
    const ok = t.target === undefined ? "" : (t.better === "lower" ? v <= t.target : v >= t.target) ? " (met)" : " (missed)";
    const c = CEILING[t.key] ? `${f(Number(j[CEILING[t.key]]))} ${t.unit}` : "";
    lines.push(`| ${t.key}: ${t.what} | ${f(v)} ${t.unit} | ${c} | ${t.target === undefined ? "" : `${t.better === "lower" ? "≤" : "≥"} ${t.target} ${t.unit}${ok}`} |`);
  }
  for (const p of r.profiles) {
    lines.push("", `${p.phase}: ${f(p.wallMs, 1)} ms per ${p.per} (${f(p.floorMs, 1)} ms with every op at its limit)`, "", "| op | ms | calls | share | achieved | limit (same run) |", "| --- | ---: | ---: | ---: | ---: | ---: |");
    for (const o of p.ops) {
      const ach = o.achieved === undefined ? "" : `${f(o.achieved, 1)} ${o.unit}`;
      const lim = o.limit === undefined ? "" : `${f(o.limit, 1)} (${o.limitName}, ${f((100 * o.achieved!) / o.limit, 0)}%)`;
      lines.push(`| ${o.label} | ${f(o.ms, 2)} | ${f(o.calls, 1)} | ${f(o.share, 1)}% | ${ach} | ${lim} |`);
    }
  }
  return lines.join("\n");
}

/** Rows of the achieved-vs-limit panel of a phase. */
export const limitRows = (p: PhaseProfile): OpRow[] =>
  p.ops.filter((o) => o.achieved !== undefined && o.limit !== undefined && o.limit > 0 && o.share >= LIMIT_CHART_MIN_SHARE);

/** Ops below this % of a phase are summed into one "other ops" bar of its share panel. */
export const SHARE_CHART_MIN_SHARE = 0.5;

/** Bars of the share panel of a phase: the ops of ≥ SHARE_CHART_MIN_SHARE %, then the rest summed. */
export function shareRows(p: PhaseProfile): { label: string; share: number; ms: number }[] {
  const big = p.ops.filter((o) => o.share >= SHARE_CHART_MIN_SHARE);
  const small = p.ops.filter((o) => o.share < SHARE_CHART_MIN_SHARE);
  const rows = big.map((o) => ({ label: o.label, share: o.share, ms: o.ms }));
  if (small.length > 0) {
    rows.push({ label: `${small.length} other ops (< ${SHARE_CHART_MIN_SHARE}% each)`, share: small.reduce((a, o) => a + o.share, 0), ms: small.reduce((a, o) => a + o.ms, 0) });
  }
  return rows;
}

/** Two panels per phase: ops by share of its time, and achieved vs limit as % of the limit. */
export function e2eChart(r: E2EResult, title: string): { svg: string; bars: number } {
  const panels: Panel[] = [];
  for (const p of r.profiles) {
    panels.push({
      title: `${p.phase}: ${f(p.wallMs, 1)} ms per ${p.per} (${f(p.floorMs, 1)} ms at the limits), ops by share of the time`,
      scaleMax: 100,
      bars: shareRows(p).map((o): Bar => ({ label: o.label, value: o.share, note: `${f(o.share, 1)}%  ${f(o.ms, 2)} ms` })),
    });
    panels.push({
      title: `${p.phase}: achieved vs limit measured in the same run (bar: % of the limit)`,
      scaleMax: 100,
      bars: limitRows(p).map((o): Bar => {
        const pct = (100 * o.achieved!) / o.limit!;
        return { label: o.label, value: pct, track: 100, note: `${f(o.achieved!, 1)} / ${f(o.limit!, 1)} ${o.unit} ${o.limitName} (${f(pct, 0)}%)` };
      }),
    });
  }
  const bars = panels.reduce((a, p) => a + p.bars.length, 0);
  return { svg: svgBarChart(title, panels), bars };
}
