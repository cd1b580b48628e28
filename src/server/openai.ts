// The OpenAI chat-completions request → a Qwen-VL-Chat turn, and the response shapes.
//
// Messages map to chat() like the reference's openai_api.py parse_messages
// (/work/shared/upstream/openai_api.py:159-285): a leading system message is the system prompt,
// then user/assistant pairs are the history, and the last message must be the user's query.
// Content is trimmed the same way (lstrip("\n").rstrip()). Content may also be OpenAI's array of
// parts: {type: "text", text} and {type: "image_url", image_url: {url}}; a user message's
// pictures become `Picture N: <img>NAME</img>` before its text (tokenization_qwen.py:407-425).
//
// Images: `data:` URLs (base64) always; local files only under --image-root (a relative path or
// a file: URL, resolved with symlinks and kept inside the root); http(s) and every other scheme
// are refused, so the server never makes an outbound request.
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { fromListFormat, type ListElement } from "../tokenizer/list-format.js";
import { pyRstrip } from "../tokenizer/special.js";
import type { HistoryTurn } from "../tokenizer/chat.js";
import type { ChatGenerationOptions } from "../chat.js";
import type { FinishReason } from "../generate/generate.js";

/** An error answered in OpenAI's shape: {"error": {message, type, param, code}}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status >= 500 ? "server_error" : "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface ParsedRequest {
  readonly query: string;
  readonly history: HistoryTurn[];
  readonly system?: string;
  /** Image bytes by the name written in <img>..</img>. */
  readonly images: Record<string, Uint8Array>;
  readonly generation: ChatGenerationOptions;
  readonly stream: boolean;
  readonly includeUsage: boolean;
}

export interface ParseOptions {
  /** Directory local image paths must stay inside; undefined: local paths are refused. */
  readonly imageRoot?: string;
  /** Upper bound for max_tokens (the model's context). */
  readonly maxTokensLimit: number;
}

const bad = (message: string, param: string | null = null, code: string | null = null) => new ApiError(400, message, "invalid_request_error", param, code);

function num(body: Record<string, unknown>, key: string, ok: (n: number) => boolean, what: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) throw bad(`'${key}' must be ${what}, got ${JSON.stringify(v)}`, key);
  return v;
}

/** The content of a message → list elements (text parts, and image parts where allowed). */
function contentElements(content: unknown, where: string, allowImages: boolean, opts: ParseOptions, images: Record<string, Uint8Array>): ListElement[] {
  if (typeof content === "string") return [{ text: trimContent(content) }];
  if (content === null || content === undefined) return [{ text: "" }];
  if (!Array.isArray(content)) throw bad(`${where}.content must be a string or an array of parts`, `${where}.content`);
  const pics: ListElement[] = [];
  const texts: string[] = [];
  content.forEach((part: unknown, i) => {
    const at = `${where}.content[${i}]`;
    if (part === null || typeof part !== "object") throw bad(`${at} must be an object`, at);
    const p = part as Record<string, unknown>;
    if (p.type === "text") {
      if (typeof p.text !== "string") throw bad(`${at}.text must be a string`, `${at}.text`);
      texts.push(p.text);
    } else if (p.type === "image_url") {
      if (!allowImages) throw bad(`${at}: images are accepted in user messages only`, at);
      const iu = p.image_url;
      const url = typeof iu === "string" ? iu : iu !== null && typeof iu === "object" ? (iu as Record<string, unknown>).url : undefined;
      if (typeof url !== "string") throw bad(`${at}.image_url.url must be a string`, `${at}.image_url`);
      pics.push({ image: addImage(url, at, opts, images) });
    } else {
      throw bad(`${at}.type must be "text" or "image_url", got ${JSON.stringify(p.type)}`, `${at}.type`);
    }
  });
  return [...pics, { text: trimContent(texts.join("\n")) }];
}

/** openai_api.py:209: content.lstrip("\n").rstrip(). */
function trimContent(s: string): string {
  return pyRstrip(s.replace(/^\n+/, ""));
}

/** Registers an image URL's bytes; returns the name its <img> tag carries. */
function addImage(url: string, at: string, opts: ParseOptions, images: Record<string, Uint8Array>): string {
  let bytes: Uint8Array;
  if (/^data:/i.test(url)) {
    const m = /^data:([^,;]*)((?:;[^,;]*)*?);base64,(.*)$/is.exec(url);
    if (!m) throw bad(`${at}: a data: URL must be base64 ("data:image/jpeg;base64,...")`, at);
    const b64 = m[3].replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw bad(`${at}: the data: URL is not valid base64`, at);
    bytes = new Uint8Array(Buffer.from(b64, "base64"));
    if (bytes.length === 0) throw bad(`${at}: the data: URL holds no bytes`, at);
  } else if (/^https?:/i.test(url)) {
    throw bad(`${at}: http(s) image URLs are not fetched (the server makes no outbound requests); send the image as a data: URL`, at, "image_url_not_allowed");
  } else if (/^[a-z][a-z0-9+.-]*:/i.test(url) && !/^file:/i.test(url)) {
    throw bad(`${at}: unsupported image URL scheme in ${JSON.stringify(url.slice(0, 40))}; use a data: URL`, at, "image_url_not_allowed");
  } else {
    bytes = readUnderRoot(url, at, opts.imageRoot);
  }
  // Named by content, so the same picture in a later request hits the embedding cache.
  const name = `upload-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}`;
  images[name] = bytes;
  return name;
}

/** A local image path (or file: URL), only inside `root` after resolving symlinks. */
function readUnderRoot(url: string, at: string, root: string | undefined): Uint8Array {
  if (root === undefined) throw bad(`${at}: local image paths are refused (start the server with --image-root DIR to allow files under DIR); send a data: URL`, at, "image_url_not_allowed");
  let p = url;
  if (/^file:/i.test(url)) {
    try {
      p = decodeURIComponent(new URL(url).pathname);
    } catch {
      throw bad(`${at}: malformed file: URL`, at);
    }
  }
  if (p.includes("\0")) throw bad(`${at}: the image path contains a NUL byte`, at);
  const rootReal = fs.realpathSync(root);
  const candidate = path.resolve(rootReal, p);
  let real: string;
  try {
    real = fs.realpathSync(candidate);
  } catch {
    throw new ApiError(400, `${at}: image ${JSON.stringify(p)} not found under the image root`, "invalid_request_error", at, "image_not_found");
  }
  const rel = path.relative(rootReal, real);
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
    throw new ApiError(403, `${at}: image ${JSON.stringify(p)} is outside the image root`, "invalid_request_error", at, "image_path_forbidden");
  }
  if (!fs.statSync(real).isFile()) throw bad(`${at}: image ${JSON.stringify(p)} is not a file`, at);
  return new Uint8Array(fs.readFileSync(real));
}

export function parseChatRequest(body: unknown, opts: ParseOptions): ParsedRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw bad("the request body must be a JSON object");
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw bad("'messages' must be a non-empty array", "messages");
  if (b.n !== undefined && b.n !== null && b.n !== 1) throw bad("only n = 1 is supported", "n");
  if (b.tools !== undefined || b.functions !== undefined) throw bad("function/tool calling is not supported", b.tools !== undefined ? "tools" : "functions");
  if (b.stream !== undefined && typeof b.stream !== "boolean") throw bad("'stream' must be a boolean", "stream");
  const images: Record<string, Uint8Array> = {};
  const msgs = b.messages.map((m: unknown, i: number) => {
    if (m === null || typeof m !== "object") throw bad(`messages[${i}] must be an object`, `messages[${i}]`);
    const role = (m as Record<string, unknown>).role;
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw bad(`messages[${i}].role must be "system", "user" or "assistant", got ${JSON.stringify(role)}`, `messages[${i}].role`);
    }
    const els = contentElements((m as Record<string, unknown>).content, `messages[${i}]`, role === "user", opts, images);
    return { role, text: fromListFormat(els) };
  });
  let system: string | undefined;
  if (msgs[0].role === "system") system = msgs.shift()!.text;
  if (msgs.length === 0 || msgs[msgs.length - 1].role !== "user") throw bad("the last message must be the user's", "messages");
  const history: HistoryTurn[] = [];
  for (let i = 0; i < msgs.length - 1; i += 2) {
    if (msgs[i].role !== "user" || msgs[i + 1]?.role !== "assistant") {
      throw bad(`messages must alternate user, assistant, ..., user after the optional system message (message ${i + (system === undefined ? 0 : 1)} breaks it)`, "messages");
    }
    history.push([msgs[i].text, msgs[i + 1].text]);
  }
  const query = msgs[msgs.length - 1].text;

  const temperature = num(b, "temperature", (n) => n >= 0 && n <= 2, "a number in [0, 2]");
  const topP = num(b, "top_p", (n) => n > 0 && n <= 1, "a number in (0, 1]");
  const topK = num(b, "top_k", (n) => Number.isInteger(n) && n >= 0, "an integer ≥ 0");
  const maxTokens = num(b, "max_completion_tokens", (n) => Number.isInteger(n) && n >= 1 && n <= opts.maxTokensLimit, `an integer in [1, ${opts.maxTokensLimit}]`)
    ?? num(b, "max_tokens", (n) => Number.isInteger(n) && n >= 1 && n <= opts.maxTokensLimit, `an integer in [1, ${opts.maxTokensLimit}]`);
  const seed = num(b, "seed", (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, "an integer in [0, 2^32)");
  const repetitionPenalty = num(b, "repetition_penalty", (n) => n > 0, "a number > 0");
  let stop: string[] = [];
  if (typeof b.stop === "string") stop = [b.stop];
  else if (Array.isArray(b.stop) && b.stop.length <= 4 && b.stop.every((s) => typeof s === "string" && s.length > 0)) stop = b.stop as string[];
  else if (b.stop !== undefined && b.stop !== null) throw bad("'stop' must be a string or an array of up to 4 non-empty strings", "stop");
  const so = b.stream_options;
  if (so !== undefined && so !== null && (typeof so !== "object" || Array.isArray(so))) throw bad("'stream_options' must be an object", "stream_options");
  const includeUsage = Boolean(so && (so as Record<string, unknown>).include_usage === true);

  const generation: ChatGenerationOptions = {
    ...(maxTokens !== undefined ? { maxNewTokens: maxTokens } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(repetitionPenalty !== undefined ? { repetitionPenalty } : {}),
    ...(stop.length > 0 ? { stopStrings: stop } : {}),
    // temperature 0 means greedy, as in OpenAI's API; otherwise sampling with the given knobs
    // over generation_config.json's defaults (top_p 0.5).
    ...(temperature === 0 ? { doSample: false } : {}),
    ...(temperature !== undefined && temperature > 0 ? { doSample: true, temperature } : {}),
    ...(topP !== undefined ? { topP } : {}),
    ...(topK !== undefined ? { topK } : {}),
  };
  return { query, history, system, images, generation, stream: b.stream === true, includeUsage };
}

/** finish_reason of OpenAI's API for a generation's end. */
export function finishReason(r: FinishReason): "stop" | "length" {
  return r === "max_new_tokens" || r === "context_window" ? "length" : "stop";
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
