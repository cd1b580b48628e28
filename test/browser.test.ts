// The whole pipeline client-side in headless Chromium (Debian's chromium, driven by
// playwright-core), through `qwenvl web` and its page: the tiny-a checkpoint is fetched by the
// page, the kernels run in Web Workers over SharedArrayBuffer-backed memories, and the greedy reply
// must be the very token ids Node produces for the same picture and prompt.
import { expect } from "chai";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { launchChromium, launchChromiumWebGpu, requireChromium } from "./helpers/chromium.js";
import { QwenVL } from "../src/model/qwen-vl.js";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { remapImageIds } from "../src/tokenizer/image-spans.js";
import { generate } from "../src/generate/generate.js";
import { createBackend, disposeBackend } from "../src/ops/select.js";
import { serve, type Served } from "./helpers/serve.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHECKPOINT = ROOT + "test/fixtures/tiny-a/checkpoint";
const DEMO = ROOT + "test/fixtures/images/demo.jpeg";
// Words whose ids all lie below tiny-a's 2048-id vocabulary (its image tags sit at 1900..1902).
const PROMPT = "is it a man?";
const MAX_NEW_TOKENS = 16;
// Both sides pin the GPTQ kernels: the timed probe could pick different (equally exact, not
// bit-identical) variants in Node and in the page.
const KERNELS = { decodeQ4: "f32", prefillQ4: "f32" } as const;
const THREADS = 2;

interface LoadReport { label: string; backend: string; threads: number; crossOriginIsolated: boolean; sharedArrayBuffer: boolean; ms: Record<string, number> }
interface RunReport { ids: number[]; promptIds: number[]; reply: string; workerSlices: number; finishReason: string; ms: Record<string, number> }

describe("in-browser page on WebGPU in headless Chromium (SwiftShader)", function () {
  this.timeout(180_000);
  let s: Served;
  let browser: Browser;
  before(async function () {
    requireChromium(this);
    s = await serve(["--checkpoint", CHECKPOINT], "web");
    browser = await launchChromiumWebGpu();
  });
  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  it("serves the WebGPU backend's shaders next to the bundle", async () => {
    const r = await fetch(`${s.url}/browser/wgsl/dense_gemv.wgsl`);
    expect(r.status).to.equal(200);
    expect(r.headers.get("content-type")).to.contain("text/wgsl");
    expect(await r.text()).to.equal(readFileSync(ROOT + "src/ops/webgpu/wgsl/dense_gemv.wgsl", "utf8"));
    expect((await fetch(`${s.url}/browser/wgsl/../package.json`)).status).to.equal(404);
  });

  it("runs the whole pipeline on navigator.gpu in the page's worker, to Node's token ids", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(`${s.url}/local.html?backend=webgpu`);
    await page.click("#load-button");
    await page.waitForSelector("#status[data-state]", { timeout: 120_000 });
    expect(await page.getAttribute("#status", "data-state"), await page.textContent("#status") ?? "").to.equal("loaded");
    const load = (await page.evaluate("window.qwenvlLocal.load")) as LoadReport;
    expect(load.backend).to.match(/^webgpu \(google swiftshader/);
    await page.setInputFiles("#file", DEMO);
    await page.waitForSelector("#attachments img");
    await page.fill("#prompt", PROMPT);
    await page.fill("#max-tokens", String(MAX_NEW_TOKENS));
    await page.click("#send");
    await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: 120_000 });
    expect(await page.getAttribute("#status", "data-state"), await page.textContent("#status") ?? "").to.equal("done");
    const run = (await page.evaluate("window.qwenvlLocal.run")) as RunReport;
    const node = await nodeResult();
    expect(run.promptIds).to.deep.equal(node.promptIds);
    expect(run.ids).to.deep.equal(node.ids);
    expect(errors).to.deep.equal([]);
    console.log(`    chromium, ${load.backend.slice(0, 60)}…: load ${Math.round(load.ms.total)} ms; image ${Math.round(run.ms.image)} ms, prefill ${Math.round(run.ms.prefill)} ms, decode ${Math.round(run.ms.decode)} ms`);
    await page.close();
  });
});

let nodeRun: Promise<{ backend: string; ids: number[]; promptIds: number[] }> | undefined;
/** Node's run of the same pipeline, computed once for the cases below. */
const nodeResult = () => (nodeRun ??= computeNodeResult());

async function computeNodeResult(): Promise<{ backend: string; ids: number[]; promptIds: number[] }> {
  const backend = await createBackend({ name: "wasm", threads: THREADS, ...KERNELS });
  try {
    const model = await QwenVL.load(CHECKPOINT, { backend });
    const tokenizer = QwenTokenizer.load();
    const promptIds = remapImageIds(tokenizer.encode(`<img>demo.jpeg</img>\n${PROMPT}`), tokenizer.imgStartId, model.imageStartId, { vocabSize: model.vocabSize });
    const image = await model.encodeImage(new Uint8Array(readFileSync(DEMO)), "demo.jpeg");
    const r = await generate(model, promptIds, {
      maxNewTokens: MAX_NEW_TOKENS, sampling: { doSample: false }, imageEmbeds: [image],
      stopTokenIds: [tokenizer.imEndId, tokenizer.imStartId, model.generation?.eosTokenId ?? tokenizer.eodId],
    });
    tokenizer.dispose();
    return { backend: backend.name, ids: r.ids, promptIds };
  } finally {
    await disposeBackend(backend);
  }
}

describe("qwenvl web routes", function () {
  this.timeout(60_000);
  let s: Served;
  before(async () => (s = await serve(["--checkpoint", CHECKPOINT], "web")));
  after(async () => s?.stop());

  it("serves the page, the bundle and the checkpoint's files, cross-origin isolated, and nothing else", async () => {
    const get = (p: string, init?: RequestInit) => fetch(s.url + p, init);
    const page = await get("/local.html");
    expect(page.status).to.equal(200);
    expect(page.headers.get("cross-origin-opener-policy")).to.equal("same-origin");
    expect(page.headers.get("cross-origin-embedder-policy")).to.equal("require-corp");
    expect(page.headers.get("content-security-policy")).to.contain("script-src 'self' 'wasm-unsafe-eval'");
    expect((await get("/")).url).to.match(/\/local\.html$/);
    for (const [p, type] of [["/browser/qwenvl.js", "text/javascript"], ["/browser/kernels.wasm", "application/wasm"], ["/browser/tiktoken_bg.wasm", "application/wasm"], ["/checkpoint/config.json", "application/json"]]) {
      const r = await get(p);
      expect(r.status, p).to.equal(200);
      expect(r.headers.get("content-type"), p).to.contain(type);
      expect(r.headers.get("cross-origin-embedder-policy"), p).to.equal("require-corp");
    }
    const shard = await get("/checkpoint/model-00001-of-00002.safetensors");
    expect(Buffer.from(await shard.arrayBuffer()).equals(readFileSync(CHECKPOINT + "/model-00001-of-00002.safetensors"))).to.equal(true);
    // Path syntax, other extensions and other directories are not files of these routes.
    for (const p of ["/checkpoint/..%2F..%2F..%2Fpackage.json", "/checkpoint/%2e%2e/config.json", "/checkpoint/config.txt", "/browser/../package.json", "/package.json", "/browser/missing.js"]) {
      expect((await get(p)).status, p).to.equal(404);
    }
    expect((await get("/local.html", { method: "POST" })).status).to.equal(405);
  });
});

describe("in-browser page in headless Chromium", function () {
  this.timeout(120_000);
  let s: Served;
  let browser: Browser;
  before(async function () {
    requireChromium(this);
    s = await serve(["--checkpoint", CHECKPOINT], "web");
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  it("runs image → vision → tokenizer → decoder → greedy sampling client-side, in workers, with Node's token ids", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(`${s.url}/local.html?threads=${THREADS}&decodeQ4=${KERNELS.decodeQ4}&prefillQ4=${KERNELS.prefillQ4}`);
    await page.click("#load-button");
    await page.waitForSelector("#status[data-state]");
    expect(await page.getAttribute("#status", "data-state"), await page.textContent("#status") ?? "").to.equal("loaded");
    const load = (await page.evaluate("window.qwenvlLocal.load")) as LoadReport;
    expect(load.crossOriginIsolated).to.equal(true);
    expect(load.sharedArrayBuffer).to.equal(true);
    expect(load.threads).to.equal(THREADS);

    await page.setInputFiles("#file", DEMO);
    await page.waitForSelector("#attachments img");
    await page.fill("#prompt", PROMPT);
    await page.fill("#max-tokens", String(MAX_NEW_TOKENS));
    await page.click("#send");
    await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]');
    expect(await page.getAttribute("#status", "data-state"), await page.textContent("#status") ?? "").to.equal("done");
    const run = (await page.evaluate("window.qwenvlLocal.run")) as RunReport;
    expect(run.workerSlices, "kernel slices run by the page's workers").to.be.greaterThan(0);

    const node = await nodeResult();
    expect(load.backend).to.equal(node.backend); // same kernel build and thread count
    expect(run.promptIds).to.deep.equal(node.promptIds);
    expect(run.ids).to.have.length(MAX_NEW_TOKENS);
    expect(run.ids).to.deep.equal(node.ids);
    expect(await page.textContent("#reply")).to.equal(run.reply);
    expect(errors).to.deep.equal([]);
    console.log(`    chromium: load ${Math.round(load.ms.total)} ms (workers ${Math.round(load.ms.backend)}, fetch ${Math.round(load.ms.fetch)}, weights ${Math.round(load.ms.model)}, tokenizer ${Math.round(load.ms.tokenizer)}); image ${Math.round(run.ms.image)} ms, prefill ${Math.round(run.ms.prefill)} ms, decode ${Math.round(run.ms.decode)} ms`);
    await page.close();
  });

  it("loads a checkpoint directory picked from disk (MemorySource) to the same reply", async () => {
    const page = await browser.newPage();
    await page.goto(`${s.url}/local.html?threads=${THREADS}&decodeQ4=${KERNELS.decodeQ4}&prefillQ4=${KERNELS.prefillQ4}`);
    await page.setInputFiles("#checkpoint-dir", CHECKPOINT);
    await page.click("#load-button");
    await page.waitForSelector("#status[data-state]");
    expect(await page.getAttribute("#status", "data-state"), await page.textContent("#status") ?? "").to.equal("loaded");
    expect(((await page.evaluate("window.qwenvlLocal.load")) as { label: string }).label).to.equal("checkpoint");
    await page.setInputFiles("#file", DEMO);
    await page.waitForSelector("#attachments img");
    await page.fill("#prompt", PROMPT);
    await page.fill("#max-tokens", String(MAX_NEW_TOKENS));
    await page.click("#send");
    await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]');
    expect(await page.getAttribute("#status", "data-state"), await page.textContent("#status") ?? "").to.equal("done");
    expect(((await page.evaluate("window.qwenvlLocal.run")) as RunReport).ids).to.deep.equal((await nodeResult()).ids);
    await page.close();
  });

  it("says why when the checkpoint cannot be fetched", async () => {
    const page = await browser.newPage();
    await page.goto(`${s.url}/local.html?checkpoint=/checkpoint-missing/&threads=1`);
    await page.click("#load-button");
    await page.waitForSelector("#status[data-state]");
    expect(await page.getAttribute("#status", "data-state")).to.equal("error");
    expect(await page.textContent("#status")).to.match(/GET http:\/\/[^ ]+\/checkpoint-missing\/config\.json answered 404/);
    await page.close();
  });
});
