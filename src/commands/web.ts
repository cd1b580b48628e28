// `qwenvl web`: serve the in-browser page (src/server/local-page.ts), where the model runs
// client-side. No model is loaded here: the server only hands out files.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { INDEX_FILE, SINGLE_FILE } from "../io/checkpoint.js";
import { createLocalPageServer } from "../server/local-page.js";
import { UsageError, intFlag } from "./common.js";

export const WEB_HELP = `qwenvl web — the in-browser page: the model runs in the browser's own WebAssembly workers

Usage: qwenvl web [--checkpoint DIR] [--host 127.0.0.1] [--port 8000]

Routes (every answer carries COOP same-origin + COEP require-corp, for SharedArrayBuffer):
  GET  /local.html            the page: pick a picture, ask; image → preprocess → vision tower →
                              tokenizer → decoder → sampling all run in the browser
  GET  /browser/*             the browser bundle (dist/browser/, built by npm run build)
  GET  /tokenizer/qwen.tiktoken
  GET  /checkpoint/*          with --checkpoint: that directory's *.json and *.safetensors

Options:
  --checkpoint DIR     checkpoint the page fetches by default (/checkpoint/); without it, the
                       page loads a checkpoint directory picked from disk
  --host H             address to listen on (default 127.0.0.1)
  --port P             default 8000; 0 picks a free port (printed)

Example:
  qwenvl web --checkpoint test/fixtures/tiny-a/checkpoint --port 8000   # then open http://127.0.0.1:8000/
`;

export async function runWeb(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      checkpoint: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8000" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(WEB_HELP);
    return 0;
  }
  const port = intFlag("web", "port", values.port, 0, 65535)!;
  let checkpointDir: string | undefined;
  if (values.checkpoint !== undefined) {
    checkpointDir = path.resolve(values.checkpoint);
    if (!fs.existsSync(checkpointDir) || !fs.statSync(checkpointDir).isDirectory()) throw new UsageError(`web: --checkpoint ${checkpointDir}: no such directory`);
    if (![INDEX_FILE, SINGLE_FILE].some((f) => fs.existsSync(path.join(checkpointDir!, f)))) {
      throw new UsageError(`web: --checkpoint ${checkpointDir}: neither ${INDEX_FILE} nor ${SINGLE_FILE} found`);
    }
  }
  const server = createLocalPageServer({ checkpointDir });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, values.host, () => resolve());
  });
  const addr = server.address();
  const where = typeof addr === "object" && addr ? `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}` : String(addr);
  // The first stdout line is machine-readable: tests and scripts wait for it.
  process.stdout.write(`listening on ${where} (in-browser page ${where}/local.html)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  server.closeAllConnections();
  return 0;
}
