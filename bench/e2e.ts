// End-to-end benchmark on a checkpoint (meant for a full-size synthetic one written by
// tools/make-checkpoint): load time, seconds per image through the vision tower (with the
// GFLOP/s that implies), prefill tokens/s for a prompt of --prompt-tokens with one image,
// decode tokens/s with the weight bytes one decode step reads and the GB/s that implies (against
// --card-gb-s, a measured bandwidth such as tools/gpu-probe.mjs's, when given), KV-cache bytes
// per token and peak RSS. Times end when the result is on the host (logits) or, for the image,
// when one row of its embeddings has been read back, so GPU work still queued is counted.
//
//   npx node dist/bench/e2e.js --checkpoint DIR [--image FILE] [--prompt-tokens 300]
//        [--decode-tokens 16] [--backend wasm] [--threads N] [--card-gb-s N] [--json FILE]
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { QwenVL } from "../src/model/qwen-vl.js";
import { KvCache } from "../src/model/qwen.js";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { makeContext } from "../src/tokenizer/chat.js";
import { fromListFormat } from "../src/tokenizer/list-format.js";
import { remapImageIds } from "../src/tokenizer/image-spans.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import { argmax } from "../src/generate/sampling.js";
import type { ModelConfig } from "../src/config.js";
import { median } from "./stats.js";
import { Checkpoint } from "../src/io/checkpoint.js";
import type { Tensor } from "../src/ops/backend.js";

const peakRssGiB = (): number => process.resourceUsage().maxRSS / 2 ** 20; // maxRSS is in KiB

/** Multiply-adds ×2 of one image through visual.py's VisionTransformer.forward. */
export function visionFlops(c: ModelConfig): number {
  const v = c.visual;
  const W = v.width;
  const E = v.outputDim;
  const P = (v.imageSize / v.patchSize) ** 2; // 1024 patches
  const Q = 256; // resampler queries (visual.py: n_queries)
  const patchK = 3 * v.patchSize * v.patchSize;
  let macs = P * patchK * W; // conv1 as a GEMM
  const block = P * W * 3 * W + 2 * P * P * W + P * W * W + 2 * P * W * v.mlpWidth;
  macs += v.layers * block;
  macs += P * W * E; // kv_proj
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
  const attn = 2 * A * (T * (T + 1)) / 2; // q·k and p·v over the causal triangle
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: "string" },
      image: { type: "string", default: "test/fixtures/images/demo.jpeg" },
      "prompt-tokens": { type: "string", default: "300" },
      "decode-tokens": { type: "string", default: "16" },
      backend: { type: "string", default: "wasm" },
      threads: { type: "string" },
      "card-gb-s": { type: "string" },
      json: { type: "string" },
    },
  });
  if (!values.checkpoint) throw new Error("e2e: --checkpoint DIR is required");
  const promptTokens = Number(values["prompt-tokens"]);
  const decodeTokens = Number(values["decode-tokens"]);
  const backend = await createBackend({ name: values.backend!, threads: values.threads ? Number(values.threads) : undefined });
  const out: Record<string, number | string> = { backend: backend.name, node_version: process.version };
  try {
    let t = performance.now();
    const model = await QwenVL.load(values.checkpoint, { backend });
    out.load_s = (performance.now() - t) / 1000;
    out.rss_after_load_gib = process.memoryUsage().rss / 2 ** 30;
    console.log(`load: ${out.load_s.toFixed(1)} s, RSS ${out.rss_after_load_gib.toFixed(2)} GiB (${backend.name})`);

    // Vision: seconds per image (decode + resize + tower), median of 2 timed runs after a warm-up.
    const bytes = new Uint8Array(fs.readFileSync(values.image!));
    const visionTimes: number[] = [];
    // A backend may return before its queued work has run: reading one row waits for it.
    const encodeSynced = async (): Promise<Tensor> => {
      const e = await model.encodeImage(bytes, values.image);
      await backend.read(backend.sliceRows(e, 0, 1));
      return e;
    };
    let embeds = await model.encodeImage(bytes, values.image);
    for (let i = 0; i < 2; i++) {
      backend.release(embeds);
      t = performance.now();
      embeds = await encodeSynced();
      visionTimes.push((performance.now() - t) / 1000);
    }
    out.vision_s_per_image = median(visionTimes);
    out.vision_gflops = visionFlops(model.config) / out.vision_s_per_image / 1e9;
    console.log(`vision: ${out.vision_s_per_image.toFixed(2)} s/image, ${out.vision_gflops.toFixed(1)} GFLOP/s (${(visionFlops(model.config) / 1e12).toFixed(2)} TFLOP/image)`);

    const ids = benchPrompt(model, values.image!, promptTokens);
    const cache = model.newCache(ids.length + decodeTokens + 1);
    t = performance.now();
    const logits = await model.prefill(ids, cache, { imageEmbeds: [embeds] });
    const prefillS = (performance.now() - t) / 1000;
    out.prompt_tokens = ids.length;
    out.prefill_tok_s = ids.length / prefillS;
    out.prefill_gflops = prefillFlops(model.config, ids.length) / prefillS / 1e9;
    console.log(`prefill: ${ids.length} tokens in ${prefillS.toFixed(2)} s = ${out.prefill_tok_s.toFixed(1)} tok/s (${out.prefill_gflops.toFixed(1)} GFLOP/s)`);

    // Decode: greedy steps with the KV cache; median step time.
    let next = argmax(logits);
    const steps: number[] = [];
    for (let i = 0; i < decodeTokens; i++) {
      t = performance.now();
      next = argmax(await model.decodeStep(next, cache));
      steps.push((performance.now() - t) / 1000);
    }
    out.decode_tok_s = 1 / median(steps);
    out.decode_tok_s_mean = steps.length / steps.reduce((a, b) => a + b, 0);
    out.decode_weight_bytes = decodeWeightBytes(values.checkpoint);
    out.decode_weight_gb_s = (out.decode_weight_bytes * out.decode_tok_s) / 1e9;
    out.kv_bytes_per_token = KvCache.bytesPerToken(model.config.llm);
    out.peak_rss_gib = peakRssGiB();
    const card = values["card-gb-s"] ? Number(values["card-gb-s"]) : NaN;
    const ofCard = card > 0 ? ` = ${((100 * out.decode_weight_gb_s) / card).toFixed(1)} % of ${card} GB/s` : "";
    console.log(`decode: ${out.decode_tok_s.toFixed(2)} tok/s (median of ${decodeTokens} steps; mean ${out.decode_tok_s_mean.toFixed(2)})`);
    console.log(`decode weights: ${(out.decode_weight_bytes / 1e9).toFixed(2)} GB/token → ${out.decode_weight_gb_s.toFixed(0)} GB/s${ofCard}`);
    console.log(`KV cache: ${(out.kv_bytes_per_token / 2 ** 20).toFixed(3)} MiB/token; peak RSS ${out.peak_rss_gib.toFixed(2)} GiB`);
    if (values.json) fs.writeFileSync(values.json, JSON.stringify(out, null, 2) + "\n");
  } finally {
    await disposeBackend(backend);
  }
}

// Run only as a program: bench/webgpu-profile imports the helpers above.
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e: Error) => {
    console.error(`e2e: ${e.message}`);
    process.exit(1);
  });
}
