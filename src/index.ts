// Public API of qwenvl.
//
//   const backend = await createBackend({ name: "wasm" });
//   const model = await QwenVL.load("/path/to/Qwen-VL-Chat-Int4", { backend });
//   const tokenizer = QwenTokenizer.load();
//   const { response, history } = await chat(model, tokenizer, query, { imagesDir: "." });
export { QwenVL } from "./model/qwen-vl.js";
export type { QwenVLLoadOptions, PrefillOptions } from "./model/qwen-vl.js";
export { chat, chatStream, resolveImageBytes, DEFAULT_SYSTEM } from "./chat.js";
export type { ChatOptions, ChatResult, ChatStats, ChatGenerationOptions } from "./chat.js";
export { generate, generateStream, ContextWindowError } from "./generate/generate.js";
export type { GenerateOptions, GenerateResult, FinishReason } from "./generate/generate.js";
export { Sampler, Rng } from "./generate/sampling.js";
export type { SamplingOptions } from "./generate/sampling.js";
export * from "./tokenizer/index.js";
export { preprocessImage } from "./image/preprocess.js";
export { loadImage } from "./image/decode.js";
export { Checkpoint } from "./io/checkpoint.js";
export { MemorySource } from "./io/source.js";
export type { CheckpointSource, RandomAccessFile } from "./io/source.js";
export { fetchCheckpoint } from "./io/fetch.js";
export type { FetchCheckpointOptions } from "./io/fetch.js";
export { VarBuilder } from "./io/var-builder.js";
export { loadModelConfig, loadGenerationDefaults } from "./config.js";
export type { ModelConfig, QwenConfig, VisualConfig, GenerationDefaults } from "./config.js";
export { Tensor } from "./ops/backend.js";
export type { Backend, Linear, LinearWeights } from "./ops/backend.js";
export { createBackend, disposeBackend, BACKEND_NAMES } from "./ops/select.js";
