// `qwenvl serve`: the OpenAI-compatible server and chat page (src/server/server.ts).
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { createQwenServer, DEFAULT_MAX_BODY_BYTES, DEFAULT_QUEUE_SIZE } from "../server/server.js";
import { MODEL_FLAGS_HELP, MODEL_OPTIONS, UsageError, intFlag, loadFromFlags, numberFlag } from "./common.js";

export const SERVE_HELP = `qwenvl serve — OpenAI-compatible HTTP server and chat page

Usage: qwenvl serve --model DIR [--host 127.0.0.1] [--port 8000] [--image-root DIR] [options]

Routes:
  POST /v1/chat/completions   messages with text and image_url parts (data: URLs; local paths
                              only under --image-root); stream: true for server-sent events,
                              stream_options.include_usage; temperature (0 = greedy), top_p,
                              top_k, max_tokens / max_completion_tokens, seed, stop,
                              repetition_penalty. Replies keep <ref>/<box> markup.
  GET  /v1/models             the served model
  GET  /health                status and queue depth
  GET  /                      chat page: upload a picture, streamed answer, boxes drawn on it
  GET  /local.html            in-browser page: the model runs in the browser's own WebAssembly
                              workers, from a checkpoint directory picked from disk (qwenvl web
                              serves a checkpoint for it)

Options:
${MODEL_FLAGS_HELP}
  --host H             address to listen on (default 127.0.0.1; the server has no authentication)
  --port P             default 8000; 0 picks a free port (printed)
  --image-root DIR     allow image_url paths (relative, or file: URLs) to files under DIR
  --queue N            requests that may wait behind the running one (default ${DEFAULT_QUEUE_SIZE}); more get 429
  --max-body-mb M      largest request body in MiB (default ${DEFAULT_MAX_BODY_BYTES / 1048576})
  --max-megapixels M   refuse pictures declaring more than M megapixels before decoding them
                       (default 178.96, Pillow's limit, what the reference accepts)
  --model-id NAME      the id reported by /v1/models (default: the checkpoint directory's name)
  --quiet              no progress bars or request log on stderr

Example (no real weights needed; replies are noise):
  qwenvl serve --model synthetic --port 8000
  curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":16}'
`;

export async function runServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_OPTIONS,
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8000" },
      "image-root": { type: "string" },
      queue: { type: "string" },
      "max-body-mb": { type: "string" },
      "model-id": { type: "string" },
      "max-megapixels": { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const port = intFlag("serve", "port", values.port, 0, 65535)!;
  const queueSize = intFlag("serve", "queue", values.queue, 0, 10000) ?? DEFAULT_QUEUE_SIZE;
  const maxBodyMb = intFlag("serve", "max-body-mb", values["max-body-mb"], 1, 4096);
  const maxMegapixels = numberFlag("serve", "max-megapixels", values["max-megapixels"], (n) => n > 0, "a number > 0");
  let imageRoot: string | undefined;
  if (values["image-root"] !== undefined) {
    imageRoot = path.resolve(values["image-root"]);
    if (!fs.existsSync(imageRoot) || !fs.statSync(imageRoot).isDirectory()) throw new UsageError(`serve: --image-root ${imageRoot}: no such directory`);
  }
  const lm = await loadFromFlags("serve", values, values.quiet);
  const modelId = values["model-id"] ?? (lm.synthetic ? "qwenvl-synthetic" : path.basename(lm.dir));
  const log = (s: string) => values.quiet || process.stderr.write(`${new Date().toISOString()} ${s}\n`);
  const server = createQwenServer({
    model: lm.model, tokenizer: lm.tokenizer, modelId, imageRoot, queueSize, log,
    ...(maxBodyMb !== undefined ? { maxBodyBytes: maxBodyMb * 1048576 } : {}),
    ...(maxMegapixels !== undefined ? { maxMegapixels } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, values.host, () => resolve());
  });
  const addr = server.address();
  const where = typeof addr === "object" && addr ? `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}` : String(addr);
  // The first stdout line is machine-readable: tests and scripts wait for it.
  process.stdout.write(`listening on ${where} (model ${modelId})\n`);
  log(`chat page: ${where}/   API: ${where}/v1/chat/completions`);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  server.closeAllConnections();
  await lm.dispose();
  return 0;
}
