// Load and run times of the in-browser page (qwenvl web + assets/web/local.html) in headless
// Chromium, beside the same steps under Node, on one checkpoint (default: tiny-a).
//   npm run build && node dist/bench/browser.js [--checkpoint DIR] [--rounds N] [--threads T] [--tokens N]
// Every round opens a fresh page (fresh workers, nothing cached but the HTTP files on loopback).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { QwenVL } from "../src/model/qwen-vl.js";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { remapImageIds } from "../src/tokenizer/image-spans.js";
import { generate } from "../src/generate/generate.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import { serve } from "../test/helpers/serve.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const { values } = parseArgs({
  options: {
    checkpoint: { type: "string", default: ROOT + "test/fixtures/tiny-a/checkpoint" },
    image: { type: "string", default: ROOT + "test/fixtures/images/demo.jpeg" },
    prompt: { type: "string", default: "is it a man?" },
    rounds: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "16" },
  },
});
const rounds = Number(values.rounds), threads = Number(values.threads), tokens = Number(values.tokens);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (what: string, xs: number[]) => console.log(`${what.padEnd(28)} median ${median(xs).toFixed(0).padStart(6)} ms   [${xs.map((x) => x.toFixed(0)).join(", ")}]`);

const s = await serve(["--checkpoint", values.checkpoint], "web");
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
const web: Record<string, number[]> = {};
const add = (t: Record<string, number[]>, k: string, v: number) => (t[k] ??= []).push(v);
try {
  for (let r = 0; r < rounds; r++) {
    const page = await browser.newPage();
    await page.goto(`${s.url}/local.html?threads=${threads}`);
    await page.click("#load-button");
    await page.waitForSelector("#status[data-state]");
    const load = (await page.evaluate("window.qwenvlLocal.load")) as { ms: Record<string, number> } | null;
    if (!load) throw new Error(`load failed: ${await page.textContent("#status")}`);
    await page.setInputFiles("#file", values.image);
    await page.waitForSelector("#attachments img");
    await page.fill("#prompt", values.prompt);
    await page.fill("#max-tokens", String(tokens));
    await page.click("#send");
    await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: 600_000 });
    const run = (await page.evaluate("window.qwenvlLocal.run")) as { ms: Record<string, number>; ids: number[] } | null;
    if (!run) throw new Error(`run failed: ${await page.textContent("#status")}`);
    for (const [k, v] of Object.entries(load.ms)) add(web, `load.${k}`, v);
    for (const [k, v] of Object.entries(run.ms)) add(web, `run.${k}`, v);
    add(web, "run.decode per token", run.ms.decode / Math.max(1, run.ids.length - 1));
    await page.close();
  }
} finally {
  await browser.close();
  await s.stop();
}

const node: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  let t = performance.now();
  const backend = await createBackend({ name: "wasm", threads });
  add(node, "load.backend", performance.now() - t);
  t = performance.now();
  const model = await QwenVL.load(values.checkpoint, { backend });
  add(node, "load.model", performance.now() - t);
  t = performance.now();
  const tokenizer = QwenTokenizer.load();
  add(node, "load.tokenizer", performance.now() - t);
  const ids = remapImageIds(tokenizer.encode(`<img>image</img>\n${values.prompt}`), tokenizer.imgStartId, model.imageStartId, { vocabSize: model.vocabSize });
  t = performance.now();
  const image = await model.encodeImage(new Uint8Array(readFileSync(values.image)), "image");
  add(node, "run.image", performance.now() - t);
  const g = await generate(model, ids, { maxNewTokens: tokens, sampling: { doSample: false }, imageEmbeds: [image] });
  add(node, "run.prefill", g.prefillMs);
  add(node, "run.decode", g.decodeMs);
  add(node, "run.decode per token", g.decodeMs / Math.max(1, g.decodeSteps));
  tokenizer.dispose();
  await disposeBackend(backend);
}
console.log(`checkpoint ${values.checkpoint}, ${threads} threads, ${tokens} new tokens, ${rounds} rounds`);
console.log("-- chromium (qwenvl web, /local.html)");
for (const [k, v] of Object.entries(web)) row(k, v);
console.log("-- node");
for (const [k, v] of Object.entries(node)) row(k, v);
