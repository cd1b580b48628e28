// The end-to-end benchmark's code path (bench/bench.ts --model → bench/e2e.ts → table, JSON, SVG)
// on the small synthetic checkpoint, the timing wrapper against the backend it wraps, and the SVG
// writer. The measurements themselves are benchmarks, not tests: here only their form is checked.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend } from "../reference/backend.js";
import { addRmsNorm, type Tensor } from "../src/ops/backend.js";
import { TimedBackend } from "../bench/timed-backend.js";
import { svgBarChart } from "../bench/svg.js";
import { limitRows, shareRows } from "../bench/e2e-report.js";
import type { PhaseProfile } from "../bench/e2e.js";
import { machineInfo } from "../bench/bench.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BENCH = ROOT + "dist/bench/bench.js";

/**
 * Well-formedness of an XML document (what an XML parser requires): one root element, every tag
 * closed in order, attributes quoted, no stray "<" or "&" in text, only the predefined entities.
 * Throws with the offset of the first fault; returns the element names in document order.
 */
function checkXml(doc: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let i = 0;
  let roots = 0;
  const fail = (why: string): never => {
    throw new Error(`XML not well-formed at ${i}: ${why} (…${doc.slice(Math.max(0, i - 30), i + 30)}…)`);
  };
  const text = (s: string): void => {
    if (/&(?!(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)/.test(s)) fail("bare & in text or attribute");
  };
  if (doc.startsWith("<?xml")) {
    i = doc.indexOf("?>");
    if (i < 0) fail("unterminated XML declaration");
    i += 2;
  }
  while (i < doc.length) {
    const lt = doc.indexOf("<", i);
    const chunk = lt < 0 ? doc.slice(i) : doc.slice(i, lt);
    if (stack.length === 0 && chunk.trim() !== "") fail("text outside the root element");
    text(chunk);
    if (lt < 0) break;
    i = lt;
    const m = /^<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/.exec(doc.slice(i));
    if (!m) fail("malformed tag");
    const [all, close, name, attrs, selfClose] = m!;
    text(attrs);
    const seen = new Set<string>();
    for (const a of attrs.matchAll(/([A-Za-z_][\w.:-]*)\s*=/g)) {
      if (seen.has(a[1])) fail(`duplicate attribute ${a[1]}`);
      seen.add(a[1]);
    }
    if (close) {
      if (stack.pop() !== name) fail(`</${name}> does not close the open element`);
    } else {
      if (stack.length === 0 && ++roots > 1) fail("second root element");
      names.push(name);
      if (!selfClose) stack.push(name);
    }
    i += all.length;
  }
  if (stack.length > 0) fail(`unclosed <${stack[stack.length - 1]}>`);
  if (roots !== 1) fail("no root element");
  return names;
}

describe("bench: end to end", function () {
  this.timeout(120_000);

  it("the XML check refuses what a parser refuses", () => {
    expect(checkXml('<svg a="1"><g><rect/></g></svg>')).to.deep.equal(["svg", "g", "rect"]);
    for (const bad of ["<svg><g></svg>", "<svg>a & b</svg>", '<svg a="1" a="2"/>', "<svg/><svg/>", "<svg a=1/>", "<svg>x<y</svg>"]) {
      expect(() => checkXml(bad), bad).to.throw(/not well-formed/);
    }
  });

  it("the SVG writer escapes text and draws one bar per value", () => {
    const svg = svgBarChart('a <b> & "c"', [
      { title: "shares", bars: [{ label: "x&y", value: 30, note: "<30%>" }, { label: "z", value: 70, note: "" }], scaleMax: 100 },
      { title: "limits", bars: [{ label: "q'", value: 5, track: 10, note: "5 / 10" }] },
    ]);
    const names = checkXml(svg);
    expect(svg.match(/<rect class="bar"/g)).to.have.length(3);
    expect(svg.match(/<rect class="track"/g)).to.have.length(1);
    expect(names[0]).to.equal("svg");
    // 70 of 100 on the 440-pixel scale; 5 of a panel whose largest value (the track) is 10.
    expect(svg).to.contain('width="308"').and.to.contain('width="220"');
  });

  it("the timing wrapper returns the wrapped backend's results and counts each op's work", async () => {
    const inner = new ReferenceBackend();
    const tb = new TimedBackend(inner);
    const [M, K, N] = [3, 8, 5];
    const w = { kind: "dense" as const, inFeatures: K, outFeatures: N, dtype: "f32" as const, weight: Float32Array.from({ length: N * K }, (_, i) => Math.sin(i)) };
    const x = inner.fromHost(Float32Array.from({ length: M * K }, (_, i) => Math.cos(i)), [M, K]);
    const want = inner.matmul(x, inner.linear(w));
    const got = tb.matmul(x, tb.linear(w));
    expect(Array.from(await tb.read(got))).to.deep.equal(Array.from(await inner.read(want)));
    tb.gelu(got);
    tb.recording = false;
    tb.gelu(got); // not recorded
    const mm = tb.stats.get(`matmul f32 ${K}→${N} (M>1)`)!;
    expect(mm).to.include({ calls: 1, flop: 2 * M * K * N, bytes: 4 * K * N, bound: "f32" });
    expect(tb.stats.get("gelu")).to.include({ calls: 1, bytes: 4 * 2 * M * N, bound: "memory" });
    expect(tb.stats.size).to.equal(2);
    expect(tb.name).to.equal(inner.name);
  });

  it("the timing wrapper offers the optional fused ops exactly when the wrapped backend has them", async () => {
    const plain = new ReferenceBackend();
    const tb = new TimedBackend(plain);
    for (const op of ["addRmsNorm", "matmulGelu", "swigluMatmul", "ropeWriteKv"] as const) expect(tb[op], op).to.equal(undefined);
    // A backend with a fused addRmsNorm: the wrapper passes the call on, timed under its name.
    class Fused extends ReferenceBackend {
      calls = 0;
      addRmsNorm(a: Tensor, b: Tensor, w: Tensor, eps: number, what: string): { sum: Tensor; normed: Tensor } {
        this.calls++;
        const sum = this.add(a, b);
        this.checkFinite(sum, what);
        return { sum, normed: this.rmsNorm(sum, w, eps) };
      }
    }
    const fused = new Fused();
    const tf = new TimedBackend(fused);
    const a = fused.fromHost(Float32Array.from({ length: 6 }, (_, i) => i - 2), [2, 3]);
    const w = fused.fromHost(Float32Array.of(1, 2, 3), [3]);
    const { normed } = addRmsNorm(tf, a, a, w, 1e-6, "test");
    expect(fused.calls).to.equal(1);
    expect(Array.from(await tf.read(normed))).to.deep.equal(Array.from(await fused.read(fused.rmsNorm(fused.add(a, a), w, 1e-6))));
    expect(tf.stats.get("addRmsNorm")).to.include({ calls: 1, bound: "memory" });
    expect(tf.stats.has("add")).to.equal(false);
  });

  it("machine info names the CPU and keeps only the flags that choose kernels", () => {
    const m = machineInfo("processor\t: 0\nmodel name\t: Test CPU\ncpu family\t: 6\nmodel\t\t: 167\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx_vnni amx_int8 bmi2\nprocessor\t: 1\n");
    expect(m).to.include({ cpu_model: "Test CPU", cpu_family: "6", cpu_model_number: "167", cores: 2 });
    expect(m.flags).to.deep.equal(["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"]);
  });

  it("npm run bench -- --model synthetic writes every key finite and positive, a table and a well-formed chart", () => {
    const dir = mkdtempSync(join(tmpdir(), "qwenvl-bench-"));
    try {
      const json = join(dir, "r.json");
      const args = [BENCH, "--limits-only", "--model", "synthetic", "--json", json, "--repeats", "2", "--decode-tokens", "4", "--vision-runs", "1", "--quiet"];
      const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 110_000, cwd: ROOT });
      expect(r.status, r.stderr).to.equal(0);
      const j = JSON.parse(readFileSync(json, "utf8")) as Record<string, unknown>;
      for (const k of ["load_s", "vision_s", "prefill_tps", "decode_tps", "peak_rss_gb", "mem_read_gbps", "simd_peak_gflops", "dot_i8_peak_gops", "dot_i16_peak_gops", "vision_s_floor", "prefill_tps_ceiling", "decode_tps_ceiling"]) {
        expect(j[k], k).to.be.a("number");
        expect(Number.isFinite(j[k]) && (j[k] as number) > 0, `${k} = ${j[k]}`).to.equal(true);
      }
      expect(j.prompt_tokens).to.equal(300);
      expect(j.decode_runs_tps).to.have.length(2);
      expect((j.machine as { node_version: string }).node_version).to.equal(process.version);
      expect(j.tuning).to.have.property("decodeQ4");
      for (const k of ["load_s", "vision_s", "prefill_tps", "decode_tps", "peak_rss_gb"]) expect(r.stdout).to.contain(`| ${k}:`);
      const profiles = j.e2e_profiles as PhaseProfile[];
      expect(profiles.map((p) => p.phase)).to.deep.equal(["image", "prefill", "decode"]);
      for (const p of profiles) {
        expect(p.ops.some((o) => o.label.startsWith("matmul q4") || p.phase === "image"), p.phase).to.equal(true);
        const shares = p.ops.reduce((a, o) => a + o.share, 0);
        expect(shares, `${p.phase} shares`).to.be.closeTo(100, 1);
        expect(p.floorMs, `${p.phase} floor`).to.be.greaterThan(0).and.lessThan(p.wallMs);
      }
      const svg = readFileSync(join(dir, "r.svg"), "utf8");
      checkXml(svg);
      const expected = profiles.reduce((a, p) => a + shareRows(p).length + limitRows(p).length, 0);
      expect(expected).to.be.greaterThan(6); // each phase has a share bar and a limit bar at least
      expect(svg.match(/<rect class="bar"/g)).to.have.length(expected);
      expect(j.chart_bars).to.equal(expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
