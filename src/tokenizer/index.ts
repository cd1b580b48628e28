// Public API of the tokenizer module.
export { QwenTokenizer, defaultVocabPath, PAT_STR } from "./tokenizer.js";
export type { BpeEncodeOptions, DecodeOptions, EncodeOptions, SpecialSet } from "./tokenizer.js";
export { StreamDecoder } from "./stream.js";
export { makeContext, getStopWordsIds, decodeTokens, pyLen } from "./chat.js";
export type { ChatContext, ChatFormat, DecodeTokensOptions, DecodedResponse, HistoryTurn, MakeContextOptions } from "./chat.js";
export { fromListFormat, toListFormat, fetchAllBoxWithRef, fetchLatestPicture } from "./list-format.js";
export type { BoxWithRef, ListElement, ParsedElement } from "./list-format.js";
export { findImageSpans, remapImageIds, imageSpanIds, replaceClosedTag } from "./image-spans.js";
export type { ImageSpan, RemapOptions } from "./image-spans.js";
export {
  ALL_SPECIAL, ENDOFTEXT, EXTRAS, IMAGE_ST, IMEND, IMG_TOKEN_SPAN, IMSTART, SPECIAL_TOKENS, TokenizerError,
} from "./special.js";
