#!/usr/bin/env node
// qwenvl command line.
import { parseArgs } from "node:util";
import { runCaseDirectory, runTokenizerFile } from "./conformance/runner.js";
import { createBackend, disposeBackend, BACKEND_NAMES } from "./ops/select.js";
import { runDemo } from "./demo.js";
import { runChat } from "./commands/chat.js";
import { runDrawBoxes } from "./commands/draw-boxes.js";
import { runServe } from "./commands/serve.js";
import { runWeb } from "./commands/web.js";
import { UsageError } from "./commands/common.js";

const HELP = `qwenvl — Qwen-VL-Chat in TypeScript + WebAssembly

Usage:
  qwenvl demo [options]              run the whole pipeline on an image (see: qwenvl demo --help)
  qwenvl chat --model DIR [--image PATH ...] [--prompt TEXT] [options]
                                     one-shot reply with --prompt, else an interactive session
  qwenvl serve --model DIR [--host H] [--port P] [--image-root DIR]
                                     OpenAI-compatible HTTP API and a chat page at /
  qwenvl web [--checkpoint DIR] [--port P]
                                     the in-browser page: the model runs client-side (docs/browser.md)
  qwenvl draw-boxes --image IMG --text RESPONSE --out OUT.png
                                     draw a response's <ref>/<box> markup on a picture
  qwenvl conformance --cases DIR [--images DIR] [--backend NAME] [--threads N]
                                     run every vision-*.msgpack / llm-*.msgpack in DIR against
                                     DIR/checkpoint (any other *.msgpack counts as failed: not
                                     implemented); images default to DIR/../images
  qwenvl conformance --tokenizer FILE.msgpack
                                     run tokenizer and chat-format goldens
  qwenvl help                        this text

Each command prints its own options with --help. --model synthetic runs chat and serve on the
demo's random-weight checkpoint, so every command can be tried without real weights.

Conformance prints per-case, per-tensor relative L2 error and max abs error and ends with
"conformance: N passed, M failed"; the exit code is 0 iff every case passes
(rel L2 < 1e-4; pixels bit-exact for PNG, within 1 level for JPEG).

Backends: ${BACKEND_NAMES.join(", ")}.
`;

async function conformance(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      cases: { type: "string" },
      images: { type: "string" },
      tokenizer: { type: "string" },
      backend: { type: "string", default: BACKEND_NAMES[0] },
      threads: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help || (!values.cases && !values.tokenizer)) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const log = (line: string) => process.stdout.write(line + "\n");
  let passed = 0;
  let failed = 0;
  if (values.tokenizer) {
    const r = await runTokenizerFile(values.tokenizer, log);
    passed += r.passed;
    failed += r.failed;
  }
  if (values.cases) {
    const threads = values.threads ? Number(values.threads) : undefined;
    const backend = await createBackend({ name: values.backend!, threads });
    try {
      const r = await runCaseDirectory(values.cases, { imagesDir: values.images, backend, log });
      passed += r.passed;
      failed += r.failed;
    } finally {
      await disposeBackend(backend);
    }
  }
  log(`conformance: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "conformance":
      return conformance(rest);
    case "demo":
      await runDemo(rest);
      return 0;
    case "chat":
      return runChat(rest);
    case "serve":
      return runServe(rest);
    case "draw-boxes":
      return runDrawBoxes(rest);
    case "web":
      return runWeb(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`qwenvl: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`qwenvl: ${err.message}\n`);
    // Wrong flags (node:util parseArgs codes, UsageError) exit 2 like other usage errors.
    const usage = err instanceof UsageError || String((err as { code?: string }).code ?? "").startsWith("ERR_PARSE_ARGS");
    if (usage) process.stderr.write(`(see: qwenvl ${process.argv[2] ?? ""} --help)\n`);
    process.exit(usage ? 2 : 1);
  },
);
