// Routes of the in-browser page (assets/web/local.html): the page, its scripts, the browser bundle
// (dist/browser/), the vocabulary and, when a checkpoint directory is given, its files. Used by
// `qwenvl web` (only these routes: the model runs in the browser) and by `qwenvl serve` (beside
// the API, without a checkpoint: the page then loads one picked from disk).
//
//   GET /local.html, /local.js, /local-worker.js     the page (assets/web/)
//   GET /browser/NAME                                 dist/browser/NAME (.js, .wasm, .map)
//   GET /browser/wgsl/NAME.wgsl                       dist/browser/wgsl/: the WebGPU backend's shaders
//   GET /tokenizer/qwen.tiktoken                      assets/qwen.tiktoken
//   GET /checkpoint/NAME                              NAME.json / NAME.safetensors of the checkpoint directory
//
// Every answer carries COOP same-origin + COEP require-corp: without cross-origin isolation a
// browser has no SharedArrayBuffer, and the kernel workers share WebAssembly memories through it.
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { packageFile } from "../package-files.js";

/** Cross-origin isolation (SharedArrayBuffer), same-origin resources only, no sniffing. */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
};

/**
 * The page compiles WebAssembly (kernels, tokenizer, JPEG decoder), which a CSP allows only with
 * 'wasm-unsafe-eval' (CSP3, "wasm-unsafe-eval" source keyword); nothing else is loosened.
 */
export const LOCAL_PAGE_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'";

const PAGE_FILES: Record<string, [file: string, type: string]> = {
  "/local.html": ["assets/web/local.html", "text/html; charset=utf-8"],
  "/local.js": ["assets/web/local.js", "text/javascript; charset=utf-8"],
  "/local-worker.js": ["assets/web/local-worker.js", "text/javascript; charset=utf-8"],
  "/style.css": ["assets/web/style.css", "text/css; charset=utf-8"],
  "/tokenizer/qwen.tiktoken": ["assets/qwen.tiktoken", "text/plain; charset=utf-8"],
};
const BUNDLE_TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8", wasm: "application/wasm", map: "application/json", wgsl: "text/wgsl; charset=utf-8",
};

export interface LocalPageOptions {
  /** Serve this checkpoint directory's *.json and *.safetensors at /checkpoint/. Default: none. */
  readonly checkpointDir?: string;
}

/** Whether `url` (a pathname) is one of these routes' prefixes or files, whatever the method. */
export function isLocalPageRoute(url: string): boolean {
  return url in PAGE_FILES || /^\/(browser|checkpoint)\//.test(url);
}

/** The file and type behind `url`, or null (unknown route, or a name outside the fixed patterns). */
export function localPageFile(url: string, options: LocalPageOptions = {}): [file: string, type: string] | null {
  if (PAGE_FILES[url]) return [packageFile(PAGE_FILES[url][0]), PAGE_FILES[url][1]];
  // Fixed directories and names without path syntax.
  const b = /^\/browser\/([a-z0-9_-]+\.(js|wasm)|[a-z0-9_-]+\.js\.map|wgsl\/[a-z0-9_]+\.wgsl)$/.exec(url);
  if (b) {
    let dir: string;
    try {
      dir = packageFile("dist/browser");
    } catch {
      return null; // only tsc ran: `npm run build` makes the bundle
    }
    return [path.join(dir, b[1]), BUNDLE_TYPES[b[1].split(".").pop()!]];
  }
  const c = /^\/checkpoint\/([A-Za-z0-9_-][A-Za-z0-9._-]*\.(json|safetensors))$/.exec(url);
  if (c && options.checkpointDir) return [path.join(options.checkpointDir, c[1]), c[2] === "json" ? "application/json" : "application/octet-stream"];
  return null;
}

/** Answers GET/HEAD `url` from these routes; false when it is not one of their files. */
export function serveLocalPage(url: string, res: http.ServerResponse, options: LocalPageOptions = {}): boolean {
  const hit = localPageFile(url, options);
  if (!hit || !fs.existsSync(hit[0]) || !fs.statSync(hit[0]).isFile()) return false;
  const [file, type] = hit;
  res.writeHead(200, {
    "Content-Type": type, "Content-Length": fs.statSync(file).size, "Cache-Control": "no-cache",
    ...ISOLATION_HEADERS, "Content-Security-Policy": LOCAL_PAGE_CSP,
  });
  // Streamed: checkpoint shards are gigabytes.
  fs.createReadStream(file).pipe(res);
  return true;
}

/** `qwenvl web`: a server of these routes only; `/` redirects to the page. */
export function createLocalPageServer(options: LocalPageOptions = {}): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "Content-Type": "text/plain; charset=utf-8", Allow: "GET, HEAD", ...ISOLATION_HEADERS });
      res.end(`${req.method} ${url}: use GET\n`);
      return;
    }
    if (url === "/") {
      res.writeHead(302, { Location: "/local.html", ...ISOLATION_HEADERS });
      res.end();
      return;
    }
    if (serveLocalPage(url, res, options)) return;
    res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8", ...ISOLATION_HEADERS });
    res.end(`no route ${url} (the page is at /local.html)\n`);
  });
}
