// The generation loop: prefill the prompt once, then one decode step per new token with the
// KV cache, until a stop token, a stop string, max_new_tokens or the context window.
//
// Stopping follows Qwen-VL-Chat's `chat()` (modeling_qwen.py:900-955): the chatml stop words are
// `<|im_end|>` and `<|im_start|>` (qwen_generation_utils.py:115-122) and generation_config's
// eos_token_id is `<|endoftext|>`. The reference lets StopWordsLogitsProcessor force one more
// <|endoftext|> after a stop word and trims it in decode_tokens; stopping at the stop word gives
// the same response one decode step sooner. The stop token itself is not part of `ids`.
//
// API
//   interface CausalLM<Cache> { maxContext; newCache(capacity); prefill(ids, cache, {imageEmbeds, onBlock}); decodeStep(id, cache) }
//   interface GenerateOptions { maxNewTokens, sampling, stopTokenIds, stopStrings, decode, imageEmbeds, contextWindow, signal }
//   type FinishReason = "stop_token" | "stop_string" | "max_new_tokens" | "context_window" | "aborted"
//   interface GenerateResult { ids, finishReason, stopToken?, stopString?, promptTokens, prefillMs, decodeMs, decodeSteps }
//   class ContextWindowError extends Error
//   generateStream(model, promptIds, options): AsyncGenerator<number, GenerateResult>   yields each new id
//   generate(model, promptIds, options): Promise<GenerateResult>
import type { Tensor } from "../ops/backend.js";
import { Sampler, type SamplingOptions } from "./sampling.js";

/** What the loop needs from a model (QwenVL implements it). */
export interface CausalLM<Cache> {
  /** Positions the model can attend over (max_position_embeddings). */
  readonly maxContext: number;
  newCache(capacity: number): Cache;
  /** Give a cache's storage back once generation is over (optional). */
  disposeCache?(cache: Cache): void;
  /** Logits of the prompt's last position: [V]. */
  prefill(ids: ArrayLike<number>, cache: Cache, options: { imageEmbeds?: readonly Tensor[]; onBlock?: (layer: number) => void }): Promise<Float32Array>;
  /** Logits after feeding one more token: [V]. */
  decodeStep(id: number, cache: Cache): Promise<Float32Array>;
}

export interface GenerateOptions {
  /** Upper bound on new tokens (generation_config max_new_tokens; 512 for Qwen-VL-Chat). */
  readonly maxNewTokens: number;
  /** Greedy by default. */
  readonly sampling?: SamplingOptions;
  /** Token ids that end generation (not included in the output), e.g. <|im_end|>, <|im_start|>, <|endoftext|>. */
  readonly stopTokenIds?: readonly number[];
  /** Strings that end generation as soon as the decoded output contains one (needs `decode`). */
  readonly stopStrings?: readonly string[];
  /** ids → text; used for stopStrings. */
  readonly decode?: (ids: readonly number[]) => string;
  /** One [256, C] embedding per image span of the prompt. */
  readonly imageEmbeds?: readonly Tensor[];
  /** Tokens the prompt plus the output may fill; default and maximum: model.maxContext. */
  readonly contextWindow?: number;
  readonly signal?: AbortSignal;
  /** Progress of the prefill: called with 0 as it starts, then with l + 1 after decoder layer l. */
  readonly onPrefillLayer?: (layersDone: number) => void;
}

export type FinishReason = "stop_token" | "stop_string" | "max_new_tokens" | "context_window" | "aborted";

export interface GenerateResult {
  /** The generated ids, without the stop token. */
  readonly ids: number[];
  readonly finishReason: FinishReason;
  readonly stopToken?: number;
  readonly stopString?: string;
  readonly promptTokens: number;
  readonly prefillMs: number;
  /** Time in decode steps, and how many ran (each feeds one generated token back). */
  readonly decodeMs: number;
  readonly decodeSteps: number;
}

/** The prompt does not fit the context window. */
export class ContextWindowError extends Error {
  constructor(
    readonly promptTokens: number,
    readonly contextWindow: number,
  ) {
    super(
      `the prompt has ${promptTokens} tokens but the context window holds ${contextWindow} (prompt plus at least one new token); ` +
        `shorten the prompt or the history (chat: lower maxWindowSize), or use fewer images (256 tokens each)`,
    );
    this.name = "ContextWindowError";
  }
}

function checkOptions<C>(model: CausalLM<C>, o: GenerateOptions): number {
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) {
    throw new Error(`generate: maxNewTokens must be an integer ≥ 1, got ${o.maxNewTokens}`);
  }
  const window = o.contextWindow ?? model.maxContext;
  if (!Number.isInteger(window) || window < 2 || window > model.maxContext) {
    throw new Error(`generate: contextWindow must be an integer in [2, ${model.maxContext}] (the model's max_position_embeddings), got ${window}`);
  }
  if (o.stopStrings && o.stopStrings.length > 0) {
    if (!o.decode) throw new Error("generate: stopStrings need a decode function (ids → text)");
    if (o.stopStrings.some((s) => typeof s !== "string" || s.length === 0)) throw new Error("generate: stop strings must be non-empty strings");
  }
  return window;
}

/** Positions reserved up front for the reply (a long reply grows the cache). */
const INITIAL_REPLY_ROOM = 128;

/**
 * A macrotask turn between tokens (so that aborts and other events are seen): setImmediate under
 * Node; browsers have none, and setTimeout(0) there costs at most the 4 ms nesting clamp.
 */
const yieldTurn: (fn: () => void) => unknown = typeof setImmediate === "function" ? setImmediate : (fn) => setTimeout(fn, 0);
const nextTick = (): Promise<void> => new Promise((resolve) => yieldTurn(resolve));

/**
 * Generates after `promptIds`, yielding each new token id as soon as it is chosen; the generator's
 * return value is the GenerateResult.
 */
export async function* generateStream<C>(
  model: CausalLM<C>,
  promptIds: readonly number[],
  options: GenerateOptions,
): AsyncGenerator<number, GenerateResult, void> {
  const window = checkOptions(model, options);
  const L = promptIds.length;
  if (L === 0) throw new Error("generate: empty prompt");
  if (L + 1 > window) throw new ContextWindowError(L, window);

  const sampler = new Sampler(options.sampling ?? { doSample: false });
  const stopIds = new Set(options.stopTokenIds ?? []);
  const stopStrings = options.stopStrings ?? [];
  // Room for the prompt and a first stretch of the reply; the cache grows if the reply goes on.
  const cache = model.newCache(Math.min(window, L + Math.min(options.maxNewTokens, INITIAL_REPLY_ROOM)));
  const history = [...promptIds];
  const ids: number[] = [];

  try {
    const onLayer = options.onPrefillLayer;
    const onBlock = onLayer && ((l: number) => onLayer(l + 1));
    onLayer?.(0);
    const t0 = performance.now();
    let logits = await model.prefill(promptIds, cache, { imageEmbeds: options.imageEmbeds, onBlock }); // [V]
    const prefillMs = performance.now() - t0;
    let decodeMs = 0;
    let decodeSteps = 0;
    const result = (finishReason: FinishReason, extra: Partial<GenerateResult> = {}): GenerateResult => ({
      ids, finishReason, promptTokens: L, prefillMs, decodeMs, decodeSteps, ...extra,
    });

    for (;;) {
      if (options.signal?.aborted) return result("aborted");
      const id = sampler.next(logits, history);
      if (stopIds.has(id)) return result("stop_token", { stopToken: id });
      ids.push(id);
      history.push(id);
      yield id;
      if (stopStrings.length > 0) {
        const text = options.decode!(ids);
        const hit = stopStrings.find((s) => text.includes(s));
        if (hit !== undefined) return result("stop_string", { stopString: hit });
      }
      if (ids.length >= options.maxNewTokens) return result("max_new_tokens");
      // Feeding `id` needs one more position: L + ids.length tokens in all.
      if (L + ids.length >= window) return result("context_window");
      await nextTick(); // let timers and abort signals run between steps
      const t1 = performance.now();
      logits = await model.decodeStep(id, cache);
      decodeMs += performance.now() - t1;
      decodeSteps++;
    }
  } finally {
    // Also when the consumer stops early (return() on the generator) or a step throws.
    model.disposeCache?.(cache);
  }
}

/** Runs generateStream to the end. */
export async function generate<C>(model: CausalLM<C>, promptIds: readonly number[], options: GenerateOptions): Promise<GenerateResult> {
  const it = generateStream(model, promptIds, options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
