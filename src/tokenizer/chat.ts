// ChatML prompt building and response extraction (qwen_generation_utils.py: make_context,
// get_stop_words_ids, decode_tokens).
import { IMAGE_END_TAG, IMAGE_ST, IMAGE_START_TAG, IMEND, IMSTART, TokenizerError, pyReprStr, pyStrip } from "./special.js";
import type { QwenTokenizer } from "./tokenizer.js";

export type ChatFormat = "chatml" | "raw";
/** One past turn: [query, response]; a null response is a turn the model has not answered. */
export type HistoryTurn = readonly [string, string | null];

export interface MakeContextOptions {
  readonly history?: readonly HistoryTurn[];
  /** Default "" as in make_context; Qwen-VL-Chat's `chat()` passes "You are a helpful assistant.". */
  readonly system?: string;
  /** Default 6144 (qwen_generation_utils.py:129, generation_config.json max_window_size). */
  readonly maxWindowSize?: number;
  readonly chatFormat?: ChatFormat;
  /**
   * The query and the history (queries and responses) come from someone untrusted: every special
   * surface in them (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, `<img>`, `<ref>`, `<box>`, ...)
   * is encoded as ordinary text, so typed markup can neither end a turn nor open an image span or
   * a grounding tag. Only the system prompt and the ChatML frame are control tokens. Default false,
   * which is the reference's behaviour (image and grounding tags in the text are control tokens,
   * the ChatML surfaces are plain text). Images cannot be given inside such text; rawText is
   * unchanged, so decodeTokens works as before.
   */
  readonly untrustedText?: boolean;
  /**
   * With untrustedText: image names whose exact `<img>NAME</img>` spans stay control tokens (the
   * pictures a server received as uploads and named itself); every other surface is still text.
   */
  readonly trustedImages?: readonly string[];
}

export interface ChatContext {
  readonly rawText: string;
  readonly contextTokens: number[];
}

/** Python's `len(str)`: code points, not UTF-16 units. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Python's `s[n:]` for n >= 0, counted in code points. */
function pySliceFrom(s: string, n: number): string {
  let i = 0;
  let k = 0;
  while (k < n && i < s.length) {
    i += s.codePointAt(i)! > 0xffff ? 2 : 1;
    k++;
  }
  return s.slice(i);
}

/**
 * make_context (qwen_generation_utils.py:125-200). History turns are added newest first while
 * system + turns stay strictly below maxWindowSize tokens; the first turn that does not fit ends
 * the history (older ones are dropped too). The query itself is never truncated.
 */
export function makeContext(tokenizer: QwenTokenizer, query: string, opts: MakeContextOptions = {}): ChatContext {
  const history = opts.history ?? [];
  const system = opts.system ?? "";
  const maxWindowSize = opts.maxWindowSize ?? 6144;
  const chatFormat = opts.chatFormat ?? "chatml";

  const untrusted = opts.untrustedText === true;
  if (chatFormat === "raw") return { rawText: query, contextTokens: tokenizer.encode(query, { safe: untrusted }) };
  if (chatFormat !== "chatml") throw new TokenizerError("NotImplementedError", `Unknown chat format ${pyReprStr(String(chatFormat))}`);

  const imStart = [tokenizer.imStartId];
  const imEnd = [tokenizer.imEndId];
  const nl = tokenizer.encode("\n");
  // Role and content: only the grounding/image tags are special; `<|im_end|>` etc. typed by a
  // user stay plain text (qwen_generation_utils.py:142-146).
  // With untrustedText every surface of the content is plain text (tokenizer.encode's safe mode).
  const tokenizeStr = (role: string, content: string, trusted = !untrusted): [string, number[]] => [
    `${role}\n${content}`,
    [
      ...tokenizer.encode(role, { allowedSpecial: IMAGE_ST }),
      ...nl,
      ...(trusted ? tokenizer.encode(content, { allowedSpecial: IMAGE_ST }) : encodeUntrusted(content)),
    ],
  ];
  // The trusted image spans split the content; special tokens are BPE boundaries, so encoding
  // the pieces apart gives the tokens the whole would give with those spans special.
  const spans = (opts.trustedImages ?? []).map((name) => `${IMAGE_START_TAG}${name}${IMAGE_END_TAG}`);
  const encodeUntrusted = (content: string): number[] => {
    const out: number[] = [];
    let rest = content;
    for (;;) {
      let at = -1;
      let span = "";
      for (const sp of spans) {
        const i = rest.indexOf(sp);
        if (i >= 0 && (at < 0 || i < at)) [at, span] = [i, sp];
      }
      if (at < 0) break;
      out.push(...tokenizer.encode(rest.slice(0, at), { safe: true }), ...tokenizer.encode(span, { allowedSpecial: IMAGE_ST }));
      rest = rest.slice(at + span.length);
    }
    out.push(...tokenizer.encode(rest, { safe: true }));
    return out;
  };

  const [systemText, systemPart] = tokenizeStr("system", system, true);
  const systemTokens = [...imStart, ...systemPart, ...imEnd];

  let rawText = "";
  let contextTokens: number[] = [];
  for (let t = history.length - 1; t >= 0; t--) {
    const [turnQuery, turnResponse] = history[t];
    const [queryText, queryPart] = tokenizeStr("user", turnQuery);
    const queryTokens = [...imStart, ...queryPart, ...imEnd];
    let next: number[];
    let prevChat: string;
    if (turnResponse !== null && turnResponse !== undefined) {
      const [responseText, responsePart] = tokenizeStr("assistant", turnResponse);
      const responseTokens = [...imStart, ...responsePart, ...imEnd];
      next = [...nl, ...queryTokens, ...nl, ...responseTokens];
      prevChat = `\n${IMSTART}${queryText}${IMEND}\n${IMSTART}${responseText}${IMEND}`;
    } else {
      next = [...nl, ...queryTokens, ...nl];
      prevChat = `\n${IMSTART}${queryText}${IMEND}\n`;
    }
    if (systemTokens.length + next.length + contextTokens.length < maxWindowSize) {
      contextTokens = [...next, ...contextTokens];
      rawText = prevChat + rawText;
    } else {
      break;
    }
  }

  contextTokens = [
    ...systemTokens,
    ...contextTokens,
    ...nl, ...imStart, ...tokenizeStr("user", query)[1], ...imEnd,
    ...nl, ...imStart, ...tokenizer.encode("assistant"), ...nl,
  ];
  rawText = `${IMSTART}${systemText}${IMEND}` + rawText + `\n${IMSTART}user\n${query}${IMEND}\n${IMSTART}assistant\n`;
  return { rawText, contextTokens };
}

/** get_stop_words_ids (qwen_generation_utils.py:115-122). */
export function getStopWordsIds(chatFormat: ChatFormat, tokenizer: QwenTokenizer): number[][] {
  if (chatFormat === "raw") return [tokenizer.encode("Human:"), [tokenizer.eodId]];
  if (chatFormat === "chatml") return [[tokenizer.imEndId], [tokenizer.imStartId]];
  throw new TokenizerError("NotImplementedError", `Unknown chat format ${pyReprStr(String(chatFormat))}`);
}

export interface DecodeTokensOptions {
  /** Python `len(raw_text)` (code points): use `pyLen(context.rawText)`. */
  readonly rawTextLen: number;
  /** `len(context_tokens)`. */
  readonly contextLength: number;
  readonly chatFormat?: ChatFormat;
}

export interface DecodedResponse {
  readonly text: string;
  /** The reference's end_reason, e.g. `Gen '<|im_end|>'` or `Gen length 57`. */
  readonly endReason: string;
}

/** decode_tokens (qwen_generation_utils.py:265-302): the response text of prompt + generated ids. */
export function decodeTokens(tokens: readonly number[], tokenizer: QwenTokenizer, opts: DecodeTokensOptions): DecodedResponse {
  const chatFormat = opts.chatFormat ?? "chatml";
  if (chatFormat === "chatml") {
    // _decode_chatml (qwen_generation_utils.py:230-262). Note the Python loop variable: with no
    // end token found it is left at the last index, so the last generated id is dropped.
    const eodIds = [tokenizer.imStartId, tokenizer.imEndId];
    let endReason = `Gen length ${tokens.length}`;
    let eodIdx = opts.contextLength;
    for (let i = opts.contextLength; i < tokens.length; i++) {
      eodIdx = i;
      if (eodIds.includes(tokens[i])) {
        endReason = `Gen ${pyReprStr(tokenizer.decode([tokens[i]]))}`;
        break;
      }
    }
    const text = pyStrip(pySliceFrom(tokenizer.decode(tokens.slice(0, eodIdx)), opts.rawTextLen));
    return { text, endReason };
  }
  if (chatFormat === "raw") {
    // _decode_default (qwen_generation_utils.py:204-227) with stop and eod word "<|endoftext|>".
    const word = "<|endoftext|>";
    let endReason = `Gen length ${tokens.length}`;
    let text = pySliceFrom(tokenizer.decode(tokens), opts.rawTextLen);
    text = pyStrip(text.split(word).join(""));
    if (text.includes(word)) endReason = `Gen ${pyReprStr(word)}`;
    text = pyStrip(text.split(word)[0]);
    return { text, endReason };
  }
  throw new TokenizerError("NotImplementedError", `Unknown chat format ${pyReprStr(String(chatFormat))}`);
}
