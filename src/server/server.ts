// `qwenvl serve`: an OpenAI-compatible HTTP server over one loaded model, and the chat page.
//
//   POST /v1/chat/completions   chat (stream: true → server-sent events)      src/server/openai.ts
//   GET  /v1/models             the one model served
//   GET  /health                liveness and queue depth
//   GET  /                      the chat page (assets/web/), COOP/COEP headers for SharedArrayBuffer
//   GET  /local.html            the in-browser page, the model runs client-side (local-page.ts, docs/browser.md)
//
// One generation runs at a time (the backend's worker threads are the whole machine); others
// wait in a bounded FIFO and get 429 when it is full. A client that disconnects, waiting or
// mid-stream, cancels its request. The model computes on this thread: between streamed tokens
// the loop yields to the event loop so that disconnects, /health and 429s are answered; during
// an image encode or a prefill the server answers nothing until it is done.
//
// Replies keep the model's <ref>/<box> grounding markup verbatim. Message text is untrusted:
// markup typed in it (<img>, <|im_end|>, ...) is encoded as plain text, never as control tokens;
// only the pictures sent as image_url parts become image spans.
import * as http from "node:http";
import * as fs from "node:fs";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import { chatStream, type ChatResult } from "../chat.js";
import type { QwenVL } from "../model/qwen-vl.js";
import type { QwenTokenizer } from "../tokenizer/tokenizer.js";
import type { Tensor } from "../ops/backend.js";
import { ContextWindowError } from "../generate/generate.js";
import { packageFile } from "../package-files.js";
import { fontPackageDir } from "../product/font.js";
import { isLocalPageRoute, serveLocalPage } from "./local-page.js";
import { ApiError, finishReason, parseChatRequest, usage } from "./openai.js";

export interface ServerOptions {
  readonly model: QwenVL;
  readonly tokenizer: QwenTokenizer;
  /** The id reported by /v1/models and in responses. */
  readonly modelId: string;
  /** Local image paths are allowed only under this directory (default: refused). */
  readonly imageRoot?: string;
  /** Largest request body; default 32 MiB (a few base64 photos). */
  readonly maxBodyBytes?: number;
  /** Requests that may wait behind the running one; default 8. */
  readonly queueSize?: number;
  /** Largest declared picture size in megapixels (default Pillow's 178.96): bombs are refused before decoding. */
  readonly maxMegapixels?: number;
  /** Image embeddings kept for later requests (by content hash); default 16. */
  readonly imageCacheEntries?: number;
  readonly log?: (line: string) => void;
}

export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 8;

/** One-at-a-time execution with a bounded wait list. */
export class GenerationQueue {
  private busy = false;
  private readonly waiting: { start: () => void; signal: AbortSignal }[] = [];
  constructor(readonly capacity: number) {}

  get running(): number {
    return this.busy ? 1 : 0;
  }
  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves with a release function when it is this caller's turn; 429 when the wait list is full. */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(() => this.next());
    }
    if (this.waiting.length >= this.capacity) {
      return Promise.reject(new ApiError(429, `the server is busy: one generation running and ${this.waiting.length} waiting (queue size ${this.capacity}); retry later`, "rate_limit_error", null, "queue_full"));
    }
    return new Promise((resolve, reject) => {
      const entry = { start: () => resolve(() => this.next()), signal };
      this.waiting.push(entry);
      signal.addEventListener("abort", () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          reject(new ApiError(499, "client closed the request", "cancelled"));
        }
      }, { once: true });
    });
  }

  private next(): void {
    const n = this.waiting.shift();
    if (n) n.start();
    else this.busy = false;
  }
}

/** Least-recently-used map of image embeddings. */
class EmbeddingCache {
  private readonly map = new Map<string, Tensor>();
  constructor(private readonly entries: number) {}
  get(name: string): Tensor | undefined {
    const e = this.map.get(name);
    if (e) {
      this.map.delete(name);
      this.map.set(name, e);
    }
    return e;
  }
  set(name: string, e: Tensor): void {
    this.map.delete(name);
    this.map.set(name, e);
    while (this.map.size > this.entries) this.map.delete(this.map.keys().next().value!);
  }
}

const STATIC: Record<string, [file: string, type: string]> = {
  "/": ["assets/web/index.html", "text/html; charset=utf-8"],
  "/index.html": ["assets/web/index.html", "text/html; charset=utf-8"],
  "/app.js": ["assets/web/app.js", "text/javascript; charset=utf-8"],
  "/style.css": ["assets/web/style.css", "text/css; charset=utf-8"],
};

/** Headers of every page and asset: cross-origin isolation (SharedArrayBuffer) and a strict CSP. */
const PAGE_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
};

function sendJson(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data), ...extra });
  res.end(data);
}

function sendError(res: http.ServerResponse, e: ApiError): void {
  sendJson(res, e.status, e.body(), e.status === 429 ? { "Retry-After": "1" } : {});
}

/** The request body, refused with 413 past `limit` bytes (without reading the rest). */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > limit) {
      reject(new ApiError(413, `the request body is ${declared} bytes; the limit is ${limit} (--max-body-mb)`, "invalid_request_error", null, "body_too_large"));
      return;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        reject(new ApiError(413, `the request body exceeds the limit of ${limit} bytes (--max-body-mb)`, "invalid_request_error", null, "body_too_large"));
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Lets the event loop run (I/O callbacks included): between tokens of a long generation. */
const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

export function createQwenServer(o: ServerOptions): http.Server & { queue: GenerationQueue } {
  const queue = new GenerationQueue(o.queueSize ?? DEFAULT_QUEUE_SIZE);
  const maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const cache = new EmbeddingCache(o.imageCacheEntries ?? 16);
  const log = o.log ?? (() => {});
  const created = Math.floor(Date.now() / 1000);
  const fonts = fontPackageDir();

  async function completions(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const ac = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    const raw = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (e) {
      throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`);
    }
    const p = parseChatRequest(body, { imageRoot: o.imageRoot, maxTokensLimit: o.model.maxContext });
    const release = await queue.acquire(ac.signal);
    const id = `chatcmpl-${randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const t0 = performance.now();
    try {
      const stream = chatStream(o.model, o.tokenizer, p.query, {
        history: p.history,
        ...(p.system !== undefined ? { system: p.system } : {}),
        images: p.images,
        readImageFiles: false,
        untrustedText: true,
        ...(o.maxMegapixels !== undefined ? { maxMegapixels: o.maxMegapixels } : {}),
        imageEmbeddingCache: cache,
        generation: p.generation,
        signal: ac.signal,
      });
      const chunkOf = (rest: Record<string, unknown>) => ({ id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: o.modelId, ...rest });
      const chunk = (delta: Record<string, string>, finish: string | null) => chunkOf({ choices: [{ index: 0, delta, finish_reason: finish }] });
      const sse = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
      let step = await stream.next(); // image encode + prefill happen here: errors still get a status code
      if (p.stream) {
        res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", Connection: "keep-alive" });
        sse(chunk({ role: "assistant", content: "" }, null));
      }
      let text = "";
      while (!step.done) {
        if (p.stream) sse(chunk({ content: step.value }, null));
        else text += step.value;
        await yieldToEventLoop();
        step = await stream.next();
      }
      const r: ChatResult = step.value;
      const u = usage(r.stats.promptTokens, r.stats.generatedTokens);
      log(`${id}: ${u.prompt_tokens} prompt + ${u.completion_tokens} completion tokens, ${r.stats.finishReason}, ${((performance.now() - t0) / 1000).toFixed(2)} s`);
      if (ac.signal.aborted) return;
      if (p.stream) {
        sse(chunk({}, finishReason(r.stats.finishReason)));
        if (p.includeUsage) sse(chunkOf({ choices: [], usage: u }));
        res.end("data: [DONE]\n\n");
      } else {
        sendJson(res, 200, {
          id, object: "chat.completion", created: Math.floor(Date.now() / 1000), model: o.modelId,
          choices: [{ index: 0, message: { role: "assistant", content: r.response }, finish_reason: finishReason(r.stats.finishReason) }],
          usage: u,
        });
      }
    } catch (e) {
      if (res.headersSent && !res.writableEnded) {
        // Mid-stream: the status is already 200; the error goes in the stream, then it ends.
        res.end(`data: ${JSON.stringify(toApiError(e).body())}\n\ndata: [DONE]\n\n`);
        return;
      }
      throw e;
    } finally {
      release();
    }
  }

  function serveStatic(url: string, res: http.ServerResponse): boolean {
    let file: string | undefined;
    let type = "";
    if (STATIC[url]) [file, type] = [packageFile(STATIC[url][0]), STATIC[url][1]];
    else if (url === "/fonts/noto-sans-sc.css") [file, type] = [path.join(fonts, "400.css"), "text/css; charset=utf-8"];
    else {
      // Only the font's own files: a fixed directory and a strict name pattern (no path syntax).
      const m = /^\/fonts\/files\/([a-z0-9-]+\.woff2?)$/.exec(url);
      if (m) [file, type] = [path.join(fonts, "files", m[1]), m[1].endsWith("2") ? "font/woff2" : "font/woff"];
    }
    if (!file) return serveLocalPage(url, res);
    if (!file || !fs.existsSync(file)) return false;
    const data = fs.readFileSync(file);
    res.writeHead(200, { "Content-Type": type, "Content-Length": data.length, "Cache-Control": "no-cache", ...PAGE_HEADERS });
    res.end(data);
    return true;
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost").pathname;
    const route = async () => {
      if (url === "/v1/chat/completions") {
        if (req.method !== "POST") throw new ApiError(405, `${req.method} ${url}: use POST`, "invalid_request_error", null, "method_not_allowed");
        return completions(req, res);
      }
      const known = url === "/v1/models" || url === "/health" || url in STATIC || url.startsWith("/fonts/") || isLocalPageRoute(url);
      if (known && req.method !== "GET" && req.method !== "HEAD") throw new ApiError(405, `${req.method} ${url}: use GET`, "invalid_request_error", null, "method_not_allowed");
      if (url === "/v1/models") {
        return sendJson(res, 200, { object: "list", data: [{ id: o.modelId, object: "model", created, owned_by: "qwenvl" }] });
      }
      if (url === "/health") {
        return sendJson(res, 200, { status: "ok", model: o.modelId, running: queue.running, queued: queue.queued, queue_size: queue.capacity, rss_bytes: process.memoryUsage.rss() });
      }
      if ((req.method === "GET" || req.method === "HEAD") && serveStatic(url, res)) return;
      throw new ApiError(404, `no route ${req.method} ${url} (try POST /v1/chat/completions, GET /v1/models, GET /health, GET /)`, "invalid_request_error", null, "not_found");
    };
    route().catch((e: unknown) => {
      const err = toApiError(e);
      if (err.status >= 500) log(`error on ${req.method} ${url}: ${(e as Error).stack ?? e}`);
      if (err.status === 499) return; // the client is gone
      sendError(res, err);
      if (err.status === 413) res.on("finish", () => req.destroy());
    });
  });
  return Object.assign(server, { queue });
}

/** Any failure → the OpenAI error it is answered with. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ContextWindowError) return new ApiError(400, e.message, "invalid_request_error", "messages", "context_length_exceeded");
  const err = e as Error;
  // Errors about the request's own content (images that do not decode, markup the tokenizer
  // rejects, sampling values out of range) are the client's; the rest are ours.
  if (err?.name === "TokenizerError" || /^(image|sampling|chat|embedInputs|generate)\b|image "|upload-[0-9a-f]{16}/i.test(err?.message ?? "")) {
    return new ApiError(400, err.message);
  }
  return new ApiError(500, `internal error: ${err?.message ?? String(e)}`);
}
