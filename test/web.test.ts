// The chat page of `qwenvl serve`, end to end in headless Chromium (Debian's chromium package,
// driven by playwright-core): upload a picture, ask, watch the streamed answer, and check that
// the answer's box is drawn on the picture where the 0–1000 grid puts it.
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { launchChromium, requireChromium } from "./helpers/chromium.js";
import { QwenTokenizer } from "../src/tokenizer/tokenizer.js";
import { BOX_REPLY, boxReplyIds, writeScriptedCheckpoint } from "./helpers/scripted-checkpoint.js";
import { serve, type Served } from "./helpers/serve.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEMO = ROOT + "test/fixtures/images/demo.jpeg";
// Functions Playwright runs in the page reach `document` through globalThis: the project
// compiles without DOM types. (String predicates would need 'unsafe-eval', which the page's CSP forbids.)

describe("chat page in headless Chromium", function () {
  this.timeout(120_000);
  let dir: string;
  let s: Served;
  let browser: Browser;
  before(async function () {
    requireChromium(this);
    dir = mkdtempSync(join(tmpdir(), "qwenvl-web-"));
    const t = QwenTokenizer.load();
    writeScriptedCheckpoint(join(dir, "ckpt"), boxReplyIds(t), t);
    s = await serve(["--model", join(dir, "ckpt"), "--model-id", "scripted", "--quiet"]);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("uploads a picture, streams the answer and draws its box on the picture", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(s.url + "/");
    await page.waitForFunction(() => (globalThis as any).document.getElementById("model")?.textContent === "scripted");
    expect(await page.evaluate("self.crossOriginIsolated")).to.equal(true); // COOP/COEP work
    await page.setInputFiles("#file", DEMO);
    await page.waitForSelector("#attachments img");
    await page.fill("#prompt", "Where is the dog?");
    await page.click("#send");
    await page.waitForSelector("#status[data-state]");
    expect(await page.getAttribute("#status", "data-state")).to.equal("done");
    const reply = await page.textContent(".msg.assistant .text");
    expect(reply).to.equal(BOX_REPLY); // markup shown as text
    expect(await page.textContent("#status")).to.match(/\d+ prompt \+ 20 reply tokens · stop/);
    const boxes = await page.evaluate("window.qwenvlBoxes");
    expect(boxes).to.deep.equal([{ x1: 24, y1: 46, x2: 1161, y2: 1214, color: "#1f77b4", ref: "狗" }]);
    const at = (x: number, y: number) =>
      page.evaluate(`Array.from(document.getElementById("picture").getContext("2d").getImageData(${x}, ${y}, 1, 1).data.slice(0, 3))`);
    expect(await page.evaluate('[document.getElementById("picture").width, document.getElementById("picture").height]')).to.deep.equal([2048, 1365]);
    expect(await at(24, 700)).to.deep.equal([31, 119, 180]); // left edge in tab:blue
    expect(await at(1161, 700)).to.deep.equal([31, 119, 180]); // right edge
    expect(await at(600, 1214)).to.deep.equal([31, 119, 180]); // bottom edge
    expect(await at(600, 700)).to.not.deep.equal([31, 119, 180]); // inside: the photo
    expect(errors).to.deep.equal([]);

    // A second turn keeps the history: the server sees user, assistant, user.
    await page.fill("#prompt", "And now?");
    await page.click("#send");
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll(".msg.assistant").length === 2 && !(globalThis as any).document.getElementById("send").disabled);
    expect(await page.textContent(".msg.assistant:nth-of-type(4) .text")).to.equal(BOX_REPLY);
    await page.close();
  });

  it("shows the server's error for a picture that cannot be read", async () => {
    const page = await browser.newPage();
    await page.goto(s.url + "/");
    await page.setInputFiles("#file", { name: "broken.jpg", mimeType: "image/jpeg", buffer: Buffer.from("definitely not a jpeg") });
    await page.waitForSelector("#attachments img");
    await page.fill("#prompt", "What is this?");
    await page.click("#send");
    await page.waitForSelector(".msg.error");
    expect(await page.textContent(".msg.error .text")).to.match(/upload-[0-9a-f]{16}/);
    await page.close();
  });
});
