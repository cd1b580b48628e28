// What `qwenvl chat` and `qwenvl serve` share: the model flags, loading with a progress bar,
// generation flags → ChatGenerationOptions, and number parsing with errors that name the flag.
import * as path from "node:path";
import * as fs from "node:fs";
import { BACKEND_NAMES, createBackend, disposeBackend } from "../ops/select.js";
import type { Backend } from "../ops/backend.js";
import { QwenVL } from "../model/qwen-vl.js";
import { QwenTokenizer } from "../tokenizer/tokenizer.js";
import { Progress } from "../product/progress.js";
import { syntheticCheckpoint } from "../demo.js";
import type { ChatGenerationOptions, ChatOptions } from "../chat.js";

/** The `--model` value that names the demo's synthetic random-weight checkpoint. */
export const SYNTHETIC = "synthetic";

export const MODEL_FLAGS_HELP = `  --model DIR          a Qwen-VL-Chat(-Int4) directory (config.json, *.safetensors, ...);
                       "${SYNTHETIC}": the demo's random-weight checkpoint (written once; replies are noise)
  --backend NAME       ${BACKEND_NAMES.join(" | ")} (default ${BACKEND_NAMES[0]})
  --threads N          worker threads of the WASM backend (default: available cores)`;

export const GENERATION_FLAGS_HELP = `  --max-new-tokens N   default: generation_config.json (512 for Qwen-VL-Chat)
  --temperature T      sample with temperature T (> 0)
  --top-p P            nucleus sampling, 0 < P ≤ 1 (generation_config.json: 0.5)
  --top-k K            keep the K most likely tokens; 0 = off
  --repetition-penalty R
  --seed S             sampling seed (default 0)
  --greedy             always the most likely token (no sampling)`;

export const MODEL_OPTIONS = {
  model: { type: "string" },
  backend: { type: "string" },
  threads: { type: "string" },
} as const;

export const GENERATION_OPTIONS = {
  "max-new-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "top-k": { type: "string" },
  "repetition-penalty": { type: "string" },
  seed: { type: "string" },
  greedy: { type: "boolean", default: false },
} as const;

export function intFlag(cmd: string, name: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${cmd}: --${name} must be an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? "∞" : max}], got ${JSON.stringify(v)}`);
  }
  return n;
}

export function numberFlag(cmd: string, name: string, v: string | undefined, ok: (n: number) => boolean, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || !ok(n)) throw new UsageError(`${cmd}: --${name} must be ${what}, got ${JSON.stringify(v)}`);
  return n;
}

/** A mistake in how a command was called: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Generation flags → ChatGenerationOptions (unset flags fall back to generation_config.json). */
export function generationFromFlags(cmd: string, v: Record<string, string | boolean | string[] | undefined>): ChatGenerationOptions {
  const s = (k: string) => v[k] as string | undefined;
  const temperature = numberFlag(cmd, "temperature", s("temperature"), (n) => n > 0, "a number > 0");
  const topP = numberFlag(cmd, "top-p", s("top-p"), (n) => n > 0 && n <= 1, "a number in (0, 1]");
  const topK = intFlag(cmd, "top-k", s("top-k"), 0);
  const sampling = temperature !== undefined || topP !== undefined || topK !== undefined;
  if (v.greedy && sampling) throw new UsageError(`${cmd}: --greedy cannot be combined with --temperature, --top-p or --top-k`);
  return {
    maxNewTokens: intFlag(cmd, "max-new-tokens", s("max-new-tokens"), 1),
    seed: intFlag(cmd, "seed", s("seed"), 0, 2 ** 32 - 1),
    repetitionPenalty: numberFlag(cmd, "repetition-penalty", s("repetition-penalty"), (n) => n > 0, "a number > 0"),
    temperature,
    topP,
    topK,
    ...(v.greedy ? { doSample: false } : sampling ? { doSample: true } : {}),
  };
}

export interface LoadedModel {
  readonly model: QwenVL;
  readonly tokenizer: QwenTokenizer;
  readonly backend: Backend;
  readonly dir: string;
  readonly synthetic: boolean;
  readonly loadMs: number;
  dispose(): Promise<void>;
}

/** Resolves --model (or "synthetic"), creates the backend and loads the weights with a progress bar. */
export async function loadFromFlags(cmd: string, v: Record<string, string | boolean | string[] | undefined>, quiet = false): Promise<LoadedModel> {
  const name = v.model as string | undefined;
  if (name === undefined) throw new UsageError(`${cmd}: --model DIR is required (or --model ${SYNTHETIC} for the demo's random-weight checkpoint)`);
  const log = (s: string) => quiet || process.stderr.write(s + "\n");
  const synthetic = name === SYNTHETIC;
  const dir = synthetic ? syntheticCheckpoint(log) : path.resolve(name);
  if (synthetic) log(`NOTE: --model ${SYNTHETIC} has RANDOM weights: everything runs, but replies are noise.`);
  else if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${cmd}: --model ${dir}: no such directory`);
  const threads = intFlag(cmd, "threads", v.threads as string | undefined, 1, 1024);
  const backendName = (v.backend as string | undefined) ?? BACKEND_NAMES[0];
  if (!(BACKEND_NAMES as readonly string[]).includes(backendName)) {
    throw new UsageError(`${cmd}: --backend must be one of ${BACKEND_NAMES.join(", ")}, got ${JSON.stringify(backendName)}`);
  }
  const backend = await createBackend({ name: backendName, threads });
  try {
    const t0 = performance.now();
    const tokenizer = QwenTokenizer.load();
    const bar = new Progress("loading weights", { unit: "bytes", silent: quiet });
    const model = await QwenVL.load(dir, { backend, onProgress: (d, t) => bar.update(d, t) });
    bar.done();
    if (model.vocabSize < tokenizer.nVocab) {
      throw new Error(`${dir}: vocab_size ${model.vocabSize} is smaller than the Qwen tokenizer's ${tokenizer.nVocab} ids, so its output cannot be read as text`);
    }
    return { model, tokenizer, backend, dir, synthetic, loadMs: performance.now() - t0, dispose: () => disposeBackend(backend) };
  } catch (e) {
    await disposeBackend(backend);
    throw e;
  }
}

/** ChatOptions.onProgress drawing one bar per image and one for prefill on stderr. */
export function progressReporter(quiet: boolean): NonNullable<ChatOptions["onProgress"]> {
  let bar: Progress | undefined;
  let key = "";
  return (stage, done, total, detail) => {
    if (quiet) return;
    const k = `${stage}:${detail}`;
    if (k !== key || !bar) {
      key = k;
      bar = new Progress(stage === "image" ? `encoding image ${detail}` : `prefill ${detail}`, { unit: "count", noun: stage === "image" ? "blocks" : "layers" });
    }
    bar.update(done, total);
    if (done === total) {
      bar.done();
      bar = undefined;
    }
  };
}
