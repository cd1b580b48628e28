// `qwenvl demo`: the whole pipeline on one real image, streamed to stdout with timings.
//
//   tokenise (ChatML, make_context) → decode + resize the image → vision tower → prefill → decode
//
// Without --checkpoint it first writes a small synthetic checkpoint (random weights, the real
// Qwen-VL-Chat-Int4 layout) into a cache directory and runs on that. Its shape: the real
// vocabulary (151,936 rows, image ids from 151,857) so the real tokenizer drives it end to end,
// with a tiny width (hidden 128, 2 layers, 2 heads × 64; vision width 128, 2 layers) so it loads
// in a second. Random weights produce random tokens: the text it prints is noise by design. Point
// --checkpoint at a Qwen-VL-Chat or Qwen-VL-Chat-Int4 directory (safetensors) for real answers.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { packageFile } from "./package-files.js";
import { parseArgs } from "node:util";
import { BACKEND_NAMES, createBackend, disposeBackend } from "./ops/select.js";
import { QwenVL } from "./model/qwen-vl.js";
import { QwenTokenizer } from "./tokenizer/tokenizer.js";
import { fromListFormat } from "./tokenizer/list-format.js";
import { chatStream, type ChatResult } from "./chat.js";
import { KvCache } from "./model/qwen.js";
import { loadModelConfig } from "./config.js";
import { configsDir, writeSyntheticCheckpoint } from "../tools/make-checkpoint.js";
import { Progress } from "./product/progress.js";
import { progressReporter } from "./commands/common.js";

const HELP = `qwenvl demo — Qwen-VL-Chat on one image, end to end

Usage: qwenvl demo [--checkpoint DIR] [--image FILE] [--prompt TEXT] [--max-new-tokens N]
                   [--backend ${BACKEND_NAMES.join("|")}] [--threads N] [--seed N] [--greedy]

  --checkpoint DIR     a Qwen-VL-Chat(-Int4) directory: config.json, generation_config.json,
                       *.safetensors. Default: a synthetic random-weight checkpoint (written once
                       into the cache directory) — it runs everything but prints noise.
  --image FILE         default: test/fixtures/images/demo.jpeg of this package
  --prompt TEXT        default: "Describe this image."
  --max-new-tokens N   default: 32
  --backend NAME       default: ${BACKEND_NAMES[0]}
  --seed N             sampling seed (default 0); --greedy picks the most likely token instead
`;


function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "qwenvl");
}

/** The synthetic demo config: tiny-a's schema, the real vocabulary and image ids, width 128. */
export function demoConfig(): Record<string, unknown> {
  const base = JSON.parse(fs.readFileSync(path.join(configsDir(), "tiny-a.json"), "utf8")) as Record<string, unknown>;
  const real = JSON.parse(fs.readFileSync(path.join(configsDir(), "qwen-vl-chat-int4.json"), "utf8")) as Record<string, unknown>;
  const visual = { ...(base.visual as Record<string, unknown>) };
  visual.image_start_id = (real.visual as Record<string, unknown>).image_start_id; // 151857
  visual.output_dim = 128; // = hidden_size (image embeddings replace token embeddings)
  return {
    ...base,
    hidden_size: 128,
    kv_channels: 64,
    num_attention_heads: 2,
    intermediate_size: 512,
    vocab_size: real.vocab_size, // 151936
    seq_length: real.seq_length, // 2048
    visual,
  };
}

/** Writes (once) and returns the synthetic demo checkpoint directory (`--model synthetic` of chat/serve). */
export function syntheticCheckpoint(log: (s: string) => void): string {
  const configJson = demoConfig();
  const dir = path.join(cacheDir(), "demo-synthetic-v1");
  const stamp = path.join(dir, "demo-stamp.json");
  const want = JSON.stringify(configJson);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === want) return dir;
  log(`writing a synthetic checkpoint (random weights, real vocabulary) to ${dir} ...`);
  const t0 = performance.now();
  const generationJson = JSON.parse(fs.readFileSync(path.join(configsDir(), "generation_config.json"), "utf8"));
  const r = writeSyntheticCheckpoint({ configJson, generationJson, out: dir, seed: 0, dtype: "int4", shardSize: 2_000_000_000 });
  fs.writeFileSync(stamp, want); // written last: a crash midway leaves no stamp and the next run rewrites
  log(`  ${r.tensors} tensors, ${(r.totalBytes / 1e6).toFixed(1)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

function intArg(name: string, v: string | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`demo: --${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      checkpoint: { type: "string" },
      image: { type: "string" },
      prompt: { type: "string", default: "Describe this image." },
      "max-new-tokens": { type: "string" },
      backend: { type: "string" },
      threads: { type: "string" },
      seed: { type: "string" },
      greedy: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const log = (s: string) => process.stderr.write(s + "\n");
  const maxNewTokens = intArg("max-new-tokens", values["max-new-tokens"], 32, 1);
  const seed = intArg("seed", values.seed, 0, 0);
  const threads = values.threads === undefined ? undefined : intArg("threads", values.threads, 1, 1);
  const backendName = values.backend ?? BACKEND_NAMES[0];
  const image = path.resolve(values.image ?? packageFile("test/fixtures/images/demo.jpeg"));
  if (!fs.existsSync(image)) throw new Error(`demo: image ${image} not found`);

  const synthetic = values.checkpoint === undefined;
  const ckpt = synthetic ? syntheticCheckpoint(log) : path.resolve(values.checkpoint!);
  if (synthetic) {
    log("NOTE: this checkpoint has RANDOM weights: the pipeline runs for real, but the reply is noise.");
    log("      For real answers: qwenvl demo --checkpoint /path/to/Qwen-VL-Chat-Int4 (safetensors).");
  }

  const backend = await createBackend({ name: backendName, threads });
  try {
    let t = performance.now();
    const tokenizer = QwenTokenizer.load();
    const vocab = loadModelConfig(ckpt).llm.vocabSize;
    if (vocab < tokenizer.nVocab) {
      throw new Error(`demo: ${ckpt} has vocab_size ${vocab}, fewer than the Qwen tokenizer's ${tokenizer.nVocab} ids, so its output cannot be read as text; run without --checkpoint for a synthetic checkpoint with the real vocabulary`);
    }
    const bar = new Progress("loading weights", { unit: "bytes" });
    const model = await QwenVL.load(ckpt, { backend, onProgress: (d, n) => bar.update(d, n) });
    bar.done();
    const llm = model.config.llm;
    log(`loaded ${ckpt} on backend "${backend.name}" in ${((performance.now() - t) / 1000).toFixed(2)} s ` +
      `(hidden ${llm.hiddenSize}, ${llm.numLayers} layers, vocab ${llm.vocabSize}, KV cache ${(KvCache.bytesPerToken(llm) / 1024).toFixed(1)} KiB/token)`);

    // The image is named by its file name and resolved in its own directory (the chat API reads
    // <img> paths relative to imagesDir).
    const query = fromListFormat([{ image: path.basename(image) }, { text: values.prompt! }]);
    process.stdout.write(`User: ${query}\n`);
    t = performance.now();
    const stream = chatStream(model, tokenizer, query, {
      imagesDir: path.dirname(image),
      onProgress: progressReporter(false),
      generation: { maxNewTokens, seed, ...(values.greedy ? { doSample: false } : {}) },
    });
    let step = await stream.next(); // image encode and prefill run here, with their progress bars
    process.stdout.write("Assistant: ");
    while (!step.done) {
      process.stdout.write(step.value);
      step = await stream.next();
    }
    const r: ChatResult = step.value;
    process.stdout.write("\n");
    const s = r.stats;
    const total = (performance.now() - t) / 1000;
    const perSec = (n: number, ms: number) => (ms > 0 ? (n / (ms / 1000)).toFixed(1) : "-");
    log(`image: ${s.images} × vision tower ${(s.imageMs / 1000).toFixed(2)} s (decode + resize + encode)`);
    log(`prefill: ${s.promptTokens} tokens in ${(s.prefillMs / 1000).toFixed(2)} s (${perSec(s.promptTokens, s.prefillMs)} tok/s)`);
    log(`decode: ${s.generatedTokens} tokens in ${(s.decodeMs / 1000).toFixed(2)} s (${perSec(s.decodeSteps, s.decodeMs)} tok/s over ${s.decodeSteps} steps), stopped by ${s.finishReason}`);
    log(`total ${total.toFixed(2)} s`);
    if (synthetic) {
      log("Next: qwenvl chat --model synthetic (interactive), qwenvl serve --model synthetic (API + page at http://127.0.0.1:8000/),");
      log("      or any of them with --model/--checkpoint /path/to/Qwen-VL-Chat-Int4 for real answers.");
    }
  } finally {
    await disposeBackend(backend);
  }
}
