// The decoder against the tiny-a goldens (reference backend), and its pieces: rotary tables with
// dynamic NTK, log-n scaling, the KV cache.
import { hostData } from "../src/ops/host.js";
import { expect } from "chai";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { ReferenceBackend } from "../reference/backend.js";
import { Tensor } from "../src/ops/backend.js";
import { QwenVL } from "../src/model/qwen-vl.js";
import { KvCache, QwenDecoder } from "../src/model/qwen.js";
import { lognScale, lognScales, ntkAlpha, rotaryInvFreq, rotaryTables } from "../src/model/rope.js";
import { compareLlmCase, runLlmCase } from "../src/conformance/llm.js";
import { readCase, relL2 } from "../src/conformance/compare.js";
import { VarBuilder } from "../src/io/var-builder.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TINY = path.join(ROOT, "test", "fixtures", "tiny-a");
const CKPT = path.join(TINY, "checkpoint");
const IMAGES = path.join(ROOT, "test", "fixtures", "images");

/** The vision golden's final embeddings for an image file name: isolates the decoder from the tower. */
function goldenImageEmbeds(file: string): Tensor {
  const stem = file.replace(/\.[^.]+$/, "");
  const t = readCase(path.join(TINY, `vision-${stem}.msgpack`)).tensors.image_embeds;
  return new Tensor(t.shape, t.data as Float32Array);
}

describe("rope: dynamic NTK and log-n", () => {
  it("ntkAlpha follows 2^ceil(log2(L/seq_length)+1) − 1, at least 1", () => {
    // tiny-a: seq_length 96; the golden prompts are 40, 285 and 541 tokens.
    expect(ntkAlpha(40, 96)).to.equal(1);
    expect(ntkAlpha(96, 96)).to.equal(1); // log2(1) + 1 = 1 → 2^1 − 1
    expect(ntkAlpha(97, 96)).to.equal(3);
    expect(ntkAlpha(192, 96)).to.equal(3); // exactly 2× stays at ceil(2) = 2
    expect(ntkAlpha(193, 96)).to.equal(7);
    expect(ntkAlpha(285, 96)).to.equal(7);
    expect(ntkAlpha(541, 96)).to.equal(15);
    expect(ntkAlpha(1, 2048)).to.equal(1);
    expect(ntkAlpha(8192, 2048)).to.equal(7); // the real model's 8K context
    expect(() => ntkAlpha(0, 96)).to.throw(/positive/);
  });

  it("inv_freq matches 1/(base·α^(d/(d−2)))^(2j/d) to float32 rounding", () => {
    for (const alpha of [1, 3, 7, 15]) {
      const inv = rotaryInvFreq(128, 10000, alpha);
      expect(inv.length).to.equal(64);
      const base = 10000 * alpha ** (128 / 126);
      for (let j = 0; j < 64; j++) {
        const exact = 1 / base ** ((2 * j) / 128);
        expect(Math.abs(inv[j] - exact) / exact).to.be.below(2.5e-7, `alpha ${alpha}, j ${j}`);
      }
    }
    // Independent value (Decimal, 50 digits): 10000^(63/64) = 8659.64323360065..., float32 8659.6435546875.
    expect(rotaryInvFreq(128, 10000, 1)[63]).to.equal(Math.fround(1 / 8659.6435546875));
  });

  it("tables hold cos/sin of the float32 angle pos·inv_freq, in the cat(freqs, freqs) layout", () => {
    const inv = rotaryInvFreq(8, 10000, 1);
    const { cos, sin } = rotaryTables(inv, 537, 2);
    expect(cos.length).to.equal(16);
    for (let t = 0; t < 2; t++) {
      for (let i = 0; i < 8; i++) {
        const angle = Math.fround((537 + t) * inv[i % 4]);
        expect(cos[t * 8 + i]).to.equal(Math.fround(Math.cos(angle)));
        expect(sin[t * 8 + i]).to.equal(Math.fround(Math.sin(angle)));
      }
    }
  });

  it("log-n is 1 up to seq_length, then log_{seq_length}(position + 1) in float32", () => {
    expect(lognScale(0, 96)).to.equal(1);
    expect(lognScale(95, 96)).to.equal(1); // position 95 is the 96th token
    expect(lognScale(96, 96)).to.equal(Math.fround(Math.log(97) / Math.log(96)));
    expect(lognScale(540, 96)).to.be.closeTo(1.3788210153579712, 1e-7);
    expect(Array.from(lognScales(94, 4, 96))).to.deep.equal([1, 1, lognScale(96, 96), lognScale(97, 96)]);
  });
});

describe("KvCache", () => {
  it("grows without losing what it holds and reports bytes per token", () => {
    const c = new KvCache(2, 2, 4, 2, 100, new ReferenceBackend());
    const k = new Tensor([2, 2, 4], Float32Array.from({ length: 16 }, (_, i) => i));
    const v = new Tensor([2, 2, 4], Float32Array.from({ length: 16 }, (_, i) => -i));
    c.write(1, 0, k, v);
    c.length = 2;
    c.reserve(3);
    expect(c.capacity).to.equal(66); // + max(64, cap/4)
    c.reserve(90);
    expect(c.capacity).to.equal(100); // 66 + 64 = 130, capped at the maximum
    expect(() => c.reserve(101)).to.throw(/exceed the maximum of 100/);
    const view = c.view(1, 2);
    expect(Array.from(hostData(view.k))).to.deep.equal(Array.from(hostData(k)));
    expect(Array.from(hostData(view.v))).to.deep.equal(Array.from(hostData(v)));
    // Qwen-VL-Chat: 2 · 32 layers · 32 heads · 128 · 4 bytes = 1 MiB per token.
    expect(KvCache.bytesPerToken({ numLayers: 32, numHeads: 32, kvChannels: 128 })).to.equal(1 << 20);
  });
});

describe("decoder vs tiny-a goldens (reference backend)", function () {
  this.timeout(60_000);
  const backend = new ReferenceBackend();
  let model: QwenVL;
  before(async () => {
    model = await QwenVL.load(CKPT, { backend });
  });

  it("llm-text: whole case through runLlmCase", async () => {
    const lines: string[] = [];
    const r = await runLlmCase(path.join(TINY, "llm-text.msgpack"), { checkpointDir: CKPT, imagesDir: IMAGES, backend, log: (l) => lines.push(l) });
    expect(r.ok, lines.join("\n")).to.equal(true);
    expect(lines.some((l) => l.includes("decode_logits"))).to.equal(true);
    expect(lines.some((l) => l.includes("argmax agreement"))).to.equal(true);
  });

  for (const name of ["image", "two-images"]) {
    it(`llm-${name}: decoder with the golden image embeddings (NTK + log-n active)`, async () => {
      const golden = readCase(path.join(TINY, `llm-${name}.msgpack`));
      const embeds = (golden.meta.images as string[]).map(goldenImageEmbeds);
      const lines: string[] = [];
      const r = await compareLlmCase(model, golden, embeds, (l) => lines.push(l));
      expect(r.ok, lines.join("\n")).to.equal(true);
    });
  }

  it("the image golden fails without dynamic NTK or without log-n (they are really exercised)", () => {
    // The exact configuration passes above; each of these alone must miss the golden clearly.
    const golden = readCase(path.join(TINY, "llm-image.msgpack"));
    const ids = golden.tensors.input_ids.data;
    const last = golden.tensors.prefill_positions.data.length - 1; // the last prompt position
    const V = model.vocabSize;
    const want = golden.tensors.prefill_logits.data.subarray(last * V, (last + 1) * V);
    const { vb, config, checkpoint } = VarBuilder.open(CKPT);
    const x = model.embedInputs(ids, [goldenImageEmbeds("demo.jpeg")]);
    const errors: Record<string, number> = {};
    for (const [label, cfg] of [
      ["no-ntk", { ...config.llm, useDynamicNtk: false }],
      ["no-logn", { ...config.llm, useLognAttn: false }],
    ] as const) {
      const dec = QwenDecoder.load(vb, cfg, backend);
      errors[label] = relL2(hostData(dec.forward(x, dec.newCache(ids.length))), want);
    }
    checkpoint.close();
    expect(errors["no-ntk"]).to.be.above(1e-2);
    expect(errors["no-logn"]).to.be.above(1e-3);
  });

  it("prefill of L−1 tokens + one decode step = prefill of L tokens (below seq_length)", async () => {
    const ids = Array.from(readCase(path.join(TINY, "llm-text.msgpack")).tensors.input_ids.data);
    const full = await model.prefill(ids, model.newCache(ids.length));
    const cache = model.newCache(4); // too small on purpose: it must grow
    await model.prefill(ids.slice(0, -1), cache);
    const step = await model.decodeStep(ids[ids.length - 1], cache);
    expect(relL2(step, full)).to.be.below(1e-5);
    expect(cache.length).to.equal(ids.length);
  });

  it("rejects bad inputs with clear errors", async () => {
    const fails = async (p: Promise<unknown>, re: RegExp): Promise<void> => {
      let err: unknown = null;
      await p.catch((e: unknown) => (err = e));
      expect(String(err)).to.match(re);
    };
    await fails(model.prefill([1, 2, 5000], model.newCache(4)), /token id 5000 at position 2 is outside the vocabulary/);
    await fails(model.decodeStep(1, model.newCache(4)), /cache is empty/);
    const ids = [5, 1900, ...new Array<number>(10).fill(1902), 1901]; // a span of 10 inner positions
    await fails(model.prefill(ids, model.newCache(16)), /1 image span\(s\) but 0 image embedding/);
    await fails(model.prefill(ids, model.newCache(16), { imageEmbeds: [backend.zeros([256, 256])] }), /spans 10 positions/);
  });
});
