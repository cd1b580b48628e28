// The chat API: Qwen-VL-Chat's `model.chat()` / `model.chat_stream()` (modeling_qwen.py:900-1015)
// over QwenVL, QwenTokenizer and the generation loop.
//
//   query (+ history, system) ──make_context──► ChatML ids ──images──► vision tower
//   ──prefill + decode──► response text (streamed as UTF-8-safe deltas)
//
// Images are written in the query as `<img>PATH</img>` (tokenizer.fromListFormat builds
// "Picture 1: <img>PATH</img>\n..."). PATH is resolved relative to `imagesDir` and must stay inside
// it unless `allowPathsOutsideImagesDir` is set; nothing is ever fetched from the network: an
// http(s) PATH needs its bytes in `options.images[PATH]`.
//
// Differences from the reference, on purpose:
//   - sampling uses a seeded RNG (options.generation.seed, default 0), so a call is reproducible;
//   - when max_new_tokens ends the reply, the reference's _decode_chatml drops the last token
//     (qwen_generation_utils.py:240-245, its loop variable stops on the last index); here the
//     reply keeps every generated token;
//   - the stream yields the new text of each step (deltas), where chat_stream yields the whole
//     text so far, and keeps special tokens such as <box> like chat() does.
//
// API
//   interface ChatGenerationOptions { maxNewTokens?, doSample?, temperature?, topK?, topP?, repetitionPenalty?, seed?, stopStrings? }
//   interface ChatOptions { history?, system?, imagesDir?, images?, allowPathsOutsideImagesDir?, untrustedText?, maxMegapixels?,
//                           readImageFiles?, imageEmbeddingCache?, maxWindowSize?, generation?, signal?, onProgress? }
//   interface ChatResult { response, history, stats }
//   chat(model, tokenizer, query, options?): Promise<ChatResult>
//   chatStream(model, tokenizer, query, options?): AsyncGenerator<string, ChatResult>
//   resolveImageBytes(path, options): Uint8Array
import * as fs from "node:fs";
import * as path from "node:path";
import type { Tensor } from "./ops/backend.js";
import type { QwenVL } from "./model/qwen-vl.js";
import type { QwenTokenizer } from "./tokenizer/tokenizer.js";
import { makeContext, type HistoryTurn } from "./tokenizer/chat.js";
import { StreamDecoder } from "./tokenizer/stream.js";
import { remapImageIds } from "./tokenizer/image-spans.js";
import { pyStrip } from "./tokenizer/special.js";
import { generateStream, type FinishReason } from "./generate/generate.js";
import type { SamplingOptions } from "./generate/sampling.js";

/** modeling_qwen.py:905: chat()'s default system prompt. */
export const DEFAULT_SYSTEM = "You are a helpful assistant.";

export interface ChatGenerationOptions {
  /** Default: generation_config.json max_new_tokens (512 for Qwen-VL-Chat), else 512. */
  readonly maxNewTokens?: number;
  /** Defaults for these come from generation_config.json (Qwen-VL-Chat: sample, top_p 0.5, top_k 0). */
  readonly doSample?: boolean;
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  readonly repetitionPenalty?: number;
  /** Sampling seed; default 0. */
  readonly seed?: number;
  /** Extra strings that end the reply (they are not part of it). */
  readonly stopStrings?: readonly string[];
}

export interface ChatOptions {
  /** Earlier [query, response] turns, oldest first. Not modified; the result carries the new history. */
  readonly history?: readonly HistoryTurn[];
  /** Default "You are a helpful assistant." (modeling_qwen.py:905). */
  readonly system?: string;
  /** Directory that image paths in <img>..</img> are relative to. Default: the current directory. */
  readonly imagesDir?: string;
  /** Image bytes by the exact path/URL written in <img>..</img>; consulted first. */
  readonly images?: Readonly<Record<string, Uint8Array>>;
  /** Allow <img> paths that resolve outside imagesDir (absolute paths, ".."). Default false. */
  readonly allowPathsOutsideImagesDir?: boolean;
  /**
   * The query and history come from someone untrusted (the server's setting): every special
   * surface typed in them is plain text; only the `<img>NAME</img>` spans of `images` are
   * pictures (makeContext's untrustedText / trustedImages). Default false: the reference's rules.
   */
  readonly untrustedText?: boolean;
  /** Largest declared image size in megapixels (default 178.96, Pillow's; src/image/limits.ts). */
  readonly maxMegapixels?: number;
  /** false: only `images` are used, no file is ever read (the server's setting). Default true. */
  readonly readImageFiles?: boolean;
  /**
   * Embeddings of earlier images by their <img> name, consulted before encoding and filled after.
   * Only sound when a name always means the same bytes (the server names uploads by their hash).
   */
  readonly imageEmbeddingCache?: { get(name: string): Tensor | undefined; set(name: string, e: Tensor): void };
  /** History window in tokens for make_context; default generation_config max_window_size (6144). */
  readonly maxWindowSize?: number;
  readonly generation?: ChatGenerationOptions;
  readonly signal?: AbortSignal;
  /**
   * Progress of the long steps: "image" counts the vision tower's blocks (+1 for the resampler)
   * of image `detail`, "prefill" the decoder layers over the prompt.
   */
  readonly onProgress?: (stage: "image" | "prefill", done: number, total: number, detail: string) => void;
}

export interface ChatStats {
  readonly promptTokens: number;
  readonly generatedTokens: number;
  readonly images: number;
  readonly imageMs: number;
  readonly prefillMs: number;
  readonly decodeMs: number;
  readonly decodeSteps: number;
  readonly finishReason: FinishReason;
}

export interface ChatResult {
  /** The reply, stripped of surrounding whitespace like decode_tokens does. */
  readonly response: string;
  /** options.history plus [query, response]. */
  readonly history: HistoryTurn[];
  readonly stats: ChatStats;
}

/** Bytes of the image written as `p` in an <img> span (see ChatOptions). */
export function resolveImageBytes(p: string, options: ChatOptions): Uint8Array {
  const supplied = options.images?.[p];
  if (supplied) return supplied;
  if (options.readImageFiles === false) {
    throw new Error(`image "${p}": no image of that name was supplied with the request (files are not read)`);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) {
    throw new Error(`image "${p}": URLs are never fetched; download it yourself and pass its bytes as options.images[${JSON.stringify(p)}]`);
  }
  const dir = path.resolve(options.imagesDir ?? ".");
  const file = path.resolve(dir, p);
  const rel = path.relative(dir, file);
  if (!options.allowPathsOutsideImagesDir && (rel.startsWith("..") || path.isAbsolute(rel))) {
    throw new Error(`image "${p}" resolves to ${file}, outside imagesDir ${dir} (set allowPathsOutsideImagesDir to permit it)`);
  }
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new Error(`image "${p}": no such file ${file} (image paths are relative to imagesDir ${dir})`);
  }
  return new Uint8Array(fs.readFileSync(file));
}

/** model.encodeImage, reporting each vision block to `onProgress`. */
async function encodeImage(model: QwenVL, bytes: Uint8Array, name: string, options: ChatOptions): Promise<Tensor> {
  const { onProgress, maxMegapixels } = options;
  if (!onProgress) return model.encodeImage(bytes, name, { maxMegapixels });
  const total = model.config.visual.layers + 1;
  onProgress("image", 0, total, name);
  const e = await model.encodeImage(bytes, name, {
    maxMegapixels,
    trace: (trace) => {
      const m = /^vit\.block\.(\d+)$/.exec(trace);
      if (m) onProgress("image", Number(m[1]) + 1, total, name);
    },
  });
  onProgress("image", total, total, name);
  return e;
}

/** Length of the prefix of `text` that can be shown: before any stop string, and not ending in the start of one. */
function showableLength(text: string, stops: readonly string[]): number {
  let end = text.length;
  for (const s of stops) {
    const at = text.indexOf(s);
    if (at >= 0) end = Math.min(end, at);
  }
  if (end < text.length) return end;
  let hold = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  end = text.length - hold;
  // Never split a surrogate pair.
  if (end > 0 && end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end--;
  return end;
}

/**
 * Streams the reply to `query`: yields text deltas as tokens are generated (never a partial UTF-8
 * character, never the start of a stop string) and returns the ChatResult.
 */
export async function* chatStream(
  model: QwenVL,
  tokenizer: QwenTokenizer,
  query: string,
  options: ChatOptions = {},
): AsyncGenerator<string, ChatResult, void> {
  const gen = model.generation;
  if (gen && gen.chatFormat !== "chatml") {
    throw new Error(`${model.dir}/generation_config.json: chat_format is "${gen.chatFormat}"; chat needs a chat model ("chatml")`);
  }
  if (model.vocabSize < tokenizer.nVocab) {
    throw new Error(`chat: the checkpoint's vocab_size ${model.vocabSize} is smaller than the tokenizer's ${tokenizer.nVocab} ids; this tokenizer cannot drive it`);
  }
  const g = options.generation ?? {};
  const maxNewTokens = g.maxNewTokens ?? gen?.maxNewTokens ?? 512;
  const sampling: SamplingOptions = {
    doSample: g.doSample ?? gen?.doSample ?? false,
    temperature: g.temperature ?? gen?.temperature ?? 1,
    topK: g.topK ?? gen?.topK ?? 0,
    topP: g.topP ?? gen?.topP ?? 1,
    repetitionPenalty: g.repetitionPenalty ?? gen?.repetitionPenalty ?? 1,
    seed: g.seed ?? 0,
  };
  const stopStrings = g.stopStrings ?? [];

  const history = options.history ?? [];
  const ctx = makeContext(tokenizer, query, {
    history,
    system: options.system ?? DEFAULT_SYSTEM,
    maxWindowSize: options.maxWindowSize ?? gen?.maxWindowSize ?? 6144,
    chatFormat: "chatml",
    ...(options.untrustedText ? { untrustedText: true, trustedImages: Object.keys(options.images ?? {}) } : {}),
  });
  // The tokenizer's <img> ids (151857..) → the checkpoint's image_start_id (the same for Qwen-VL-Chat).
  const ids = remapImageIds(ctx.contextTokens, tokenizer.imgStartId, model.imageStartId, { vocabSize: model.vocabSize });

  // One embedding per span; an image named twice is encoded once.
  const t0 = performance.now();
  const byPath = new Map<string, Tensor>();
  const imageEmbeds: Tensor[] = [];
  for (const span of model.imageSpans(ids)) {
    let e = byPath.get(span.path) ?? options.imageEmbeddingCache?.get(span.path);
    if (!e) {
      e = await encodeImage(model, resolveImageBytes(span.path, options), span.path, options);
      options.imageEmbeddingCache?.set(span.path, e);
    }
    byPath.set(span.path, e);
    imageEmbeds.push(e);
  }
  const imageMs = performance.now() - t0;

  const onProgress = options.onProgress;
  const steps = generateStream(model, ids, {
    maxNewTokens,
    sampling,
    // get_stop_words_ids("chatml") plus generation_config's eos (<|endoftext|>).
    stopTokenIds: [tokenizer.imEndId, tokenizer.imStartId, gen?.eosTokenId ?? tokenizer.eodId],
    stopStrings,
    decode: (out) => tokenizer.decode(out),
    imageEmbeds,
    signal: options.signal,
    ...(onProgress ? { onPrefillLayer: (done: number) => onProgress("prefill", done, model.config.llm.numLayers, `${ids.length} tokens`) } : {}),
  });
  const decoder = new StreamDecoder(tokenizer);
  let text = "";
  let shown = 0;
  let step = await steps.next();
  while (!step.done) {
    text += decoder.push(step.value);
    const end = showableLength(text, stopStrings);
    if (end > shown) {
      yield text.slice(shown, end);
      shown = end;
    }
    step = await steps.next();
  }
  const r = step.value;
  text += decoder.finish();
  let end = text.length;
  for (const s of stopStrings) {
    const at = text.indexOf(s);
    if (at >= 0) end = Math.min(end, at);
  }
  if (end > shown) yield text.slice(shown, end);

  const response = pyStrip(text.slice(0, end));
  return {
    response,
    history: [...history, [query, response]],
    stats: {
      promptTokens: ids.length,
      generatedTokens: r.ids.length,
      images: imageEmbeds.length,
      imageMs,
      prefillMs: r.prefillMs,
      decodeMs: r.decodeMs,
      decodeSteps: r.decodeSteps,
      finishReason: r.finishReason,
    },
  };
}

/** The whole reply at once (chatStream run to the end). */
export async function chat(model: QwenVL, tokenizer: QwenTokenizer, query: string, options: ChatOptions = {}): Promise<ChatResult> {
  const it = chatStream(model, tokenizer, query, options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
