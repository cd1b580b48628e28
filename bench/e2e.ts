// End-to-end benchmark on a checkpoint (meant for the full-size synthetic one written by
// `make-checkpoint --config full`): load seconds, seconds per 448² image through the vision tower,
// prefill tokens/s of a --prompt-tokens prompt with one image, decode tokens/s of --decode-tokens
// greedy steps after it (--repeats times, rewound to the prompt each time; median), peak RSS, and
// per phase (image, prefill, decode token) the time of every backend op with its achieved rate.
// Each image's time is also given in three parts: vision_decode_s (the host's file decode),
// vision_graph_s (the resize to 448² and normalisation — Backend.imagePixels — and the tower; on
// WebGPU the recording and submitting of their dispatches, resize included) and vision_wait_s
// (until a row of the embeddings is on the host).
// Run from bench.ts (`npm run bench -- --model DIR`, limits from the same run) or alone:
//
//   npx node dist/bench/e2e.js --checkpoint DIR|synthetic [--image FILE] [--prompt-tokens 300]
//        [--decode-tokens 64] [--repeats 3] [--vision-runs 2] [--threads N] [--json FILE]
//        [--limits JSON] [--quiet] [--card-gb-s N]
// decode_weight_gb_s: the checkpoint bytes one step reads in full (decodeWeightBytes) × tokens/s,
// as a share of --card-gb-s when given (a measured device bandwidth).
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { loadavg } from "node:os";
import { QwenVL } from "../src/model/qwen-vl.js";
import { KvCache } from "../src/model/qwen.js";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { makeContext } from "../src/tokenizer/chat.js";
import { fromListFormat } from "../src/tokenizer/list-format.js";
import { remapImageIds } from "../src/tokenizer/image-spans.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import { argmax } from "../src/generate/sampling.js";
import { packageFile } from "../src/package-files.js";
import { Progress } from "../src/product/progress.js";
import { syntheticCheckpoint } from "../src/demo.js";
import type { ModelConfig } from "../src/config.js";
import { TimedBackend, type OpStat } from "./timed-backend.js";
import { median } from "./stats.js";
import { Checkpoint } from "../src/io/checkpoint.js";
import { loadImage } from "../src/image/decode.js";
import type { Tensor } from "../src/ops/backend.js";

/** Multiply-adds ×2 of one image through visual.py's VisionTransformer.forward. */
export function visionFlops(c: ModelConfig): number {
  const v = c.visual;
  const W = v.width;
  const E = v.outputDim;
  const P = (v.imageSize / v.patchSize) ** 2; // 1024 patches
  const Q = v.nQueries; // resampler queries (visual.py: n_queries = 256)
  const patchK = 3 * v.patchSize * v.patchSize;
  let macs = P * patchK * W; // conv1 as a GEMM
  const block = P * W * 3 * W + 2 * P * P * W + P * W * W + 2 * P * W * v.mlpWidth;
  macs += v.layers * block;
  if (W !== E) macs += P * W * E; // kv_proj
  macs += Q * E * E + 2 * P * E * E; // in_proj for q (256 rows) and k, v (1024 rows)
  macs += 2 * Q * P * E + Q * E * E; // attention and out_proj
  macs += Q * E * E; // proj
  return 2 * macs;
}

/** FLOPs of a prefill of T tokens (logits for the last row only). */
export function prefillFlops(c: ModelConfig, T: number): number {
  const l = c.llm;
  const C = l.hiddenSize;
  const A = l.numHeads * l.kvChannels;
  const F = l.intermediateSize / 2; // QWenMLP: ff_dim_in = intermediate_size // 2
  const perToken = C * 3 * A + A * C + 2 * C * F + F * C;
  const attn = (2 * A * (T * (T + 1))) / 2; // q·k and p·v over the causal triangle
  return 2 * (l.numLayers * (T * perToken + attn) + C * l.vocabSize);
}

/**
 * Bytes of the checkpoint's tensors that one decode step reads in full: every decoder layer's
 * weights (transformer.h.*), the final norm and the output projection (lm_head). The embedding
 * table is left out: a step gathers one row of it.
 */
export function decodeWeightBytes(dir: string): number {
  const ck = Checkpoint.open(dir);
  try {
    let total = 0;
    for (const n of ck.names()) {
      if (n.startsWith("transformer.h.") || n.startsWith("transformer.ln_f.") || n.startsWith("lm_head.")) total += ck.info(n).byteLength;
    }
    return total;
  } finally {
    ck.close();
  }
}

/**
 * Token ids of a ChatML prompt with one image, padded with text to at least `promptTokens`
 * (" cat" is one token, so the length is hit exactly), image ids remapped for `model`.
 */
export function benchPrompt(model: QwenVL, imagePath: string, promptTokens: number): number[] {
  const tokenizer = QwenTokenizer.load();
  let words = 0;
  let ids: number[] = [];
  for (;;) {
    const text = "Describe the picture." + " cat".repeat(words);
    const query = fromListFormat([{ image: path.basename(imagePath) }, { text }]);
    ids = makeContext(tokenizer, query, {}).contextTokens;
    if (ids.length >= promptTokens) break;
    words += 1;
  }
  return remapImageIds(ids, tokenizer.imgStartId, model.imageStartId, { vocabSize: model.vocabSize });
}

/** The machine limits of the kernel benchmark's run that the op rates are set against. */
export interface Limits {
  readonly mem_read_gbps: number;
  readonly simd_peak_gflops: number;
  readonly dot_i8_peak_gops: number;
  readonly dot_i16_peak_gops: number;
}

export interface E2EOptions {
  /** Checkpoint directory, or "synthetic" for the demo's small random-weight checkpoint. */
  readonly model: string;
  readonly image?: string;
  readonly promptTokens?: number;
  readonly decodeTokens?: number;
  readonly repeats?: number;
  readonly visionRuns?: number;
  readonly threads?: number;
  readonly backend?: string;
  /** A measured device bandwidth (GB/s, e.g. tools/gpu-probe.mjs's) the decode weight rate is set against. */
  readonly cardGbS?: number;
  /** Progress bars and lines on stderr (default true). */
  readonly verbose?: boolean;
}

/** One op of a phase: time per phase unit (image / prompt / token), share, achieved rate vs limit. */
export interface OpRow {
  readonly label: string;
  readonly ms: number;
  readonly calls: number;
  /** Percent of the phase's wall time. */
  readonly share: number;
  /** GB/s (memory-bound ops) or GFLOP/s (compute-bound); absent for the time outside the backend. */
  readonly achieved?: number;
  readonly limit?: number;
  readonly unit?: "GB/s" | "GFLOP/s";
  readonly limitName?: string;
}

export interface PhaseProfile {
  readonly phase: "image" | "prefill" | "decode";
  /** What `ms` of a row is per. */
  readonly per: string;
  readonly wallMs: number;
  /**
   * The phase's time if every op ran at its limit (memory-bound ops at the read limit, the others
   * at their peak) and nothing ran outside the backend: Σ ms · min(1, achieved / limit).
   */
  readonly floorMs: number;
  readonly ops: OpRow[];
}

export interface E2EResult {
  /** load_s, vision_s, prefill_tps, decode_tps, peak_rss_gb and the supporting figures. */
  readonly json: Record<string, number | string | number[]>;
  readonly profiles: PhaseProfile[];
}

/** Limit and rate of one op stat: memory → GB/s against the read limit, else GFLOP/s against a peak. */
function rate(s: OpStat, lim: Limits, prefillQ4: string): Pick<OpRow, "achieved" | "limit" | "unit" | "limitName"> {
  if (s.ms <= 0) return {};
  if (s.bound === "memory") return { achieved: s.bytes / s.ms / 1e6, limit: lim.mem_read_gbps, unit: "GB/s", limitName: "mem_read" };
  if (s.bound === "q4" && prefillQ4 === "i8x3") {
    // i8x3 executes 3 byte products per useful multiply-add (bench.ts, "GPTQ int4").
    return { achieved: s.flop / s.ms / 1e6, limit: lim.dot_i8_peak_gops / 3, unit: "GFLOP/s", limitName: "dot_i8_peak/3" };
  }
  return { achieved: s.flop / s.ms / 1e6, limit: lim.simd_peak_gflops, unit: "GFLOP/s", limitName: "simd_peak" };
}

function profile(phase: PhaseProfile["phase"], per: string, units: number, wallMs: number, tb: TimedBackend, lim: Limits, prefillQ4: string): PhaseProfile {
  const wall = wallMs / units;
  const ops: OpRow[] = [...tb.stats.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([label, s]) => ({ label, ms: s.ms / units, calls: s.calls / units, share: (100 * s.ms) / wallMs, ...rate(s, lim, prefillQ4) }));
  const outside = wall - tb.totalMs() / units;
  const what = phase === "image" ? "image decode, resize, graph" : "graph, embedding, copies, argmax";
  ops.push({ label: `outside the backend (${what})`, ms: Math.max(0, outside), calls: 0, share: Math.max(0, (100 * outside) / wall) });
  // An op faster than its limit (small weights served from cache, not memory) counts as measured.
  const floorMs = ops.reduce((a, o) => a + (o.achieved !== undefined && o.limit ? Math.min(o.ms, (o.ms * o.achieved) / o.limit) : 0), 0);
  return { phase, per, wallMs: wall, floorMs, ops };
}

const peakRss = (): number => process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB

export async function runE2E(opts: E2EOptions, lim: Limits): Promise<E2EResult> {
  const verbose = opts.verbose ?? true;
  const log = (s: string): void => void (verbose && process.stderr.write(s + "\n"));
  const promptTokens = opts.promptTokens ?? 300;
  const decodeTokens = opts.decodeTokens ?? 64;
  const repeats = opts.repeats ?? 3;
  const visionRuns = opts.visionRuns ?? 2;
  for (const [k, v] of Object.entries({ promptTokens, decodeTokens, repeats, visionRuns })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`e2e: ${k} must be an integer ≥ 1, got ${v}`);
  }
  const image = path.resolve(opts.image ?? packageFile("test/fixtures/images/demo.jpeg"));
  const dir = opts.model === "synthetic" ? syntheticCheckpoint(log) : path.resolve(opts.model);
  const inner = await createBackend({ name: opts.backend ?? "wasm", threads: opts.threads });
  const tb = new TimedBackend(inner);
  // The GPTQ kernels this process's backend chose (its own start-up probe, autotune.ts).
  const tuning = (inner as { tuning?: { decodeQ4: string; prefillQ4: string; reason: { decodeQ4: string; prefillQ4: string } } }).tuning;
  const prefillQ4 = tuning?.prefillQ4 ?? "f32";
  const json: Record<string, number | string | number[]> = { backend: inner.name, checkpoint: dir };
  if (tuning) {
    json.e2e_decode_q4 = tuning.decodeQ4;
    json.e2e_prefill_q4 = tuning.prefillQ4;
    json.e2e_decode_q4_reason = tuning.reason.decodeQ4;
    json.e2e_prefill_q4_reason = tuning.reason.prefillQ4;
  }
  const profiles: PhaseProfile[] = [];
  try {
    // Load, with a progress bar over the checkpoint's bytes.
    tb.recording = false;
    const bar = new Progress("loading weights", { unit: "bytes", silent: !verbose });
    let t = performance.now();
    const model = await QwenVL.load(dir, { backend: tb, onProgress: (d, n) => bar.update(d, n) });
    bar.done();
    json.load_s = (performance.now() - t) / 1000;
    json.rss_after_load_gb = process.memoryUsage().rss / 1e9;
    log(`load: ${json.load_s.toFixed(1)} s, RSS ${json.rss_after_load_gb.toFixed(2)} GB (${inner.name})`);

    // Vision: seconds per image (decode + resize to 448² + tower). The first run pays first-touch
    // page faults of the scratch and V8's baseline code: it is reported apart (vision_first_s) and
    // left out of the median when there are more runs. The last run is profiled.
    const bytes = new Uint8Array(fs.readFileSync(image));
    const vt: number[] = [];
    // Each run in three parts (the body of QwenVL.encodeImage, timed apart): the host's file
    // decode; the graph — the resize and normalisation (imagePixels) and the tower — which on the
    // CPU backends is their whole work and on WebGPU the recording and submitting of their
    // dispatches; and the wait until a row of the embeddings is on the host (a GPU backend may
    // still be running the resize and the tower).
    const parts = { decode: [] as number[], graph: [] as number[], wait: [] as number[] };
    let embeds = null as Tensor | null;
    for (let i = 0; i < visionRuns; i++) {
      tb.stats.clear();
      tb.recording = i === visionRuns - 1;
      t = performance.now();
      const img = await loadImage(bytes, { name: path.basename(image) });
      const t1 = performance.now();
      const pixels = tb.imagePixels(img.rgb, img.width, img.height, model.config.visual.imageSize);
      embeds = model.vision.encode(pixels);
      tb.release(pixels);
      const t2 = performance.now();
      await tb.read(tb.sliceRows(embeds, 0, 1));
      const t3 = performance.now();
      vt.push((t3 - t) / 1000);
      parts.decode.push((t1 - t) / 1000);
      parts.graph.push((t2 - t1) / 1000);
      parts.wait.push((t3 - t2) / 1000);
      log(`  image ${i + 1}/${visionRuns}: ${vt[i].toFixed(2)} s (decode ${(t1 - t).toFixed(0)} ms, resize and tower ${(t2 - t1).toFixed(0)} ms, wait ${(t3 - t2).toFixed(0)} ms)`);
    }
    const rest = <T>(a: T[]): T[] => (a.length > 1 ? a.slice(1) : a);
    json.vision_first_s = vt[0];
    json.vision_s = median(rest(vt));
    json.vision_decode_s = median(rest(parts.decode));
    json.vision_graph_s = median(rest(parts.graph));
    json.vision_wait_s = median(rest(parts.wait));
    json.vision_runs_s = vt.map((x) => Number(x.toFixed(3)));
    json.vision_gflops = visionFlops(model.config) / json.vision_s / 1e9;
    profiles.push(profile("image", "image", 1, vt[vt.length - 1] * 1000, tb, lim, prefillQ4));
    json.vision_s_floor = profiles[0].floorMs / 1000;
    log(`vision: ${json.vision_s.toFixed(2)} s/image, ${json.vision_gflops.toFixed(1)} GFLOP/s`);

    // A ChatML prompt with one image, padded with text to the requested length (" cat" is one
    // token, so the length is hit exactly once the image and template are in).
    const ids = benchPrompt(model, image, promptTokens);
    const cache = model.newCache(ids.length + decodeTokens + 1);
    tb.stats.clear();
    tb.recording = true;
    t = performance.now();
    const logits = await model.prefill(ids, cache, { imageEmbeds: [embeds!] });
    const prefillMs = performance.now() - t;
    json.prompt_tokens = ids.length;
    json.prefill_s = prefillMs / 1000;
    json.prefill_tps = ids.length / json.prefill_s;
    json.prefill_gflops = prefillFlops(model.config, ids.length) / json.prefill_s / 1e9;
    profiles.push(profile("prefill", `prompt of ${ids.length} tokens`, 1, prefillMs, tb, lim, prefillQ4));
    json.prefill_tps_ceiling = (1000 * ids.length) / profiles[1].floorMs;
    log(`prefill: ${ids.length} tokens in ${json.prefill_s.toFixed(2)} s = ${json.prefill_tps.toFixed(2)} tok/s (${json.prefill_gflops.toFixed(1)} GFLOP/s)`);

    // Decode: `repeats` runs of `decodeTokens` greedy steps, each from the prompt (the cache is
    // rewound to it: later positions are overwritten). tokens/s of each run; the median is reported.
    const first = argmax(logits);
    const rates: number[] = [];
    let decodeMs = 0;
    tb.stats.clear();
    for (let r = 0; r < repeats; r++) {
      cache.length = ids.length;
      let next = first;
      t = performance.now();
      for (let i = 0; i < decodeTokens; i++) next = argmax(await model.decodeStep(next, cache));
      const ms = performance.now() - t;
      decodeMs += ms;
      rates.push((1000 * decodeTokens) / ms);
      log(`  decode run ${r + 1}/${repeats}: ${decodeTokens} tokens, ${rates[r].toFixed(2)} tok/s`);
    }
    json.decode_tps = median(rates);
    json.decode_runs_tps = rates.map((x) => Number(x.toFixed(3)));
    profiles.push(profile("decode", "token", repeats * decodeTokens, decodeMs, tb, lim, prefillQ4));
    json.decode_tps_ceiling = 1000 / profiles[2].floorMs;
    // What a token has to read: weights of every GEMV, K/V, activations (the decode floor's bytes).
    json.decode_bytes_per_token = [...tb.stats.values()].reduce((a, st) => a + (st.bound === "memory" ? st.bytes : 0), 0) / (repeats * decodeTokens);
    json.loadavg_1m_end = loadavg()[0]; // other processes on a shared machine (bench.ts records the start)
    json.decode_weight_bytes = decodeWeightBytes(dir);
    json.decode_weight_gb_s = (json.decode_weight_bytes * json.decode_tps) / 1e9;
    if (opts.cardGbS) json.decode_weight_pct_of_card = (100 * json.decode_weight_gb_s) / opts.cardGbS;
    json.kv_bytes_per_token = KvCache.bytesPerToken(model.config.llm);
    json.peak_rss_gb = peakRss() / 1e9;
    json.peak_rss_gib = peakRss() / 2 ** 30;
    log(`decode: ${json.decode_tps.toFixed(2)} tok/s (median of ${repeats} runs of ${decodeTokens}); peak RSS ${json.peak_rss_gb.toFixed(2)} GB`);
    model.disposeCache(cache);
  } finally {
    await disposeBackend(tb);
  }
  return { json, profiles };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: "string" },
      image: { type: "string" },
      "prompt-tokens": { type: "string", default: "300" },
      "decode-tokens": { type: "string", default: "64" },
      repeats: { type: "string", default: "3" },
      "vision-runs": { type: "string", default: "2" },
      backend: { type: "string", default: "wasm" },
      threads: { type: "string" },
      json: { type: "string" },
      limits: { type: "string" },
      quiet: { type: "boolean", default: false },
      "card-gb-s": { type: "string" },
    },
  });
  if (!values.checkpoint) throw new Error("e2e: --checkpoint DIR|synthetic is required (or: npm run bench -- --model DIR)");
  // --limits: the limits bench.ts measured (it runs this file in a child process, so that peak RSS
  // is the model's alone). Without it, a short measurement of the same limits.
  const lim: Limits = values.limits ? (JSON.parse(values.limits) as Limits) : (await import("./bench.js")).measureLimits(values.threads ? Number(values.threads) : 2);
  const r = await runE2E(
    {
      model: values.checkpoint,
      image: values.image,
      promptTokens: Number(values["prompt-tokens"]),
      decodeTokens: Number(values["decode-tokens"]),
      repeats: Number(values.repeats),
      visionRuns: Number(values["vision-runs"]),
      backend: values.backend,
      threads: values.threads ? Number(values.threads) : undefined,
      verbose: !values.quiet,
      cardGbS: values["card-gb-s"] ? Number(values["card-gb-s"]) : undefined,
    },
    lim,
  );
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ ...r.json, profiles: r.profiles }, null, 2) + "\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: Error) => {
    console.error(`e2e: ${e.message}`);
    process.exit(1);
  });
}
